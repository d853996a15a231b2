#!/usr/bin/env bash
# Maintainers: regenerate docs/figures/ (the figures shown in the README) from the README's demo runs.
# The demo runs go to runs/demo-* (reused when already complete); only this script writes into docs/.
set -euo pipefail
cd "$(dirname "$0")/.."
demo=(--p 61 --d 128 --lr 3e-3 --wd 1 --lamb 2 --train-frac 0.8)
python miiii.py --task nanda  --p 59 --d 128 --lr 1e-3 --wd 1 --lamb 2 --epochs 3000 --out runs/demo-nanda --quiet
python miiii.py --task miiii  "${demo[@]}" --epochs 5000 --out runs/demo-miiii --quiet
python miiii.py --task basis  "${demo[@]}" --epochs 2000 --out runs/demo-basis --quiet
python miiii.py --task masked "${demo[@]}" --epochs 2000 --out runs/demo-masked --quiet
python fft_analysis.py runs/demo-nanda runs/demo-miiii runs/demo-basis runs/demo-masked > /dev/null
python figures.py --nanda runs/demo-nanda --miiii runs/demo-miiii --basis runs/demo-basis \
                  --masked runs/demo-masked --out docs/figures --dpi 100
