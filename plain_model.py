"""The miiii model written the plain way: the one to learn from, forward and backward by hand.

The same parameters as miiii.init_params (tok_emb, pos_emb, W_Q, W_K, W_V, W_O, W_in, W_out, W_U;
no biases, no layer norm), computed as a textbook one-block transformer: embed all 3 positions of
[x0, x1, '='], self-attention over them (no causal mask), residual, a ReLU MLP at every position, residual,
unembed, and read the prediction at '='. Each layer is a *_forward / *_backward pair; NumPy only.

miiii.py computes the same numbers (tests/test_plain_model.py: to float64 rounding), faster, by
three changes that are exact, not approximations:
- Only '=' reaches the logits. With one block, positions 0 and 1 after attention feed only their
  own MLP and unembedding, read nowhere; so miiii.py computes the query, the residual stream, the
  MLP and the unembedding at '=' alone.
- Token tables. Positions 0 and 1 hold one of p+1 tokens, position 2 is always '=': miiii.py
  projects keys and values once per possible token and gathers them per sample (gradients are
  scattered back with one-hot matmuls) instead of multiplying every sample's rows.
- A collapse-safe loss. -log p_t = log1p(rest / e_t) and the target's gradient -rest / sum (for
  p_t - 1), from the other classes' mass `rest`: equal in exact arithmetic, but a float32 p_t that
  rounds to 1 keeps its tiny gradient. One shift per row instead of per head: a softmax ignores it.
"""
import numpy as np


def embedding_forward(x, tok_emb, pos_emb):
    z = tok_emb[x] + pos_emb  # (N, 3) -> (N, 3, d): each token's row plus its position's row
    return z, (x, tok_emb.shape[0])


def embedding_backward(dz, cache):
    x, vocab = cache
    dtok_emb = np.zeros((vocab, dz.shape[-1]), dtype=dz.dtype)
    np.add.at(dtok_emb, x, dz)  # a token seen in many places collects the gradient of each
    return {"tok_emb": dtok_emb, "pos_emb": dz.sum(axis=0)}  # (N, 3, d) -> (3, d)


def attention_forward(z, W_Q, W_K, W_V, W_O):
    """Self-attention over each sequence's 3 positions; heads added up through W_O.

    No causal mask (definitions §2): at '=', the one position read, a mask would hide nothing anyway.
    """
    dh = W_Q.shape[-1]
    q = np.einsum("ntd,hde->nhte", z, W_Q)  # (N, 3, d) -> (N, h, 3, dh)
    k = np.einsum("ntd,hde->nhte", z, W_K)  # (N, h, 3, dh)
    v = np.einsum("ntd,hde->nhte", z, W_V)  # (N, h, 3, dh)
    scores = q @ k.swapaxes(-1, -2) / np.sqrt(dh)  # (N, h, 3, 3): query position x key position
    att = np.exp(scores - scores.max(axis=-1, keepdims=True))  # shifted: same softmax, no overflow
    att /= att.sum(axis=-1, keepdims=True)  # (N, h, 3, 3): a full softmax for every query
    a = att @ v  # (N, h, 3, dh): each query's mix of values
    out = np.einsum("nhte,hed->ntd", a, W_O)  # (N, h, 3, dh) -> (N, 3, d): heads summed
    return out, (z, W_Q, W_K, W_V, W_O, q, k, v, att, a)


def attention_backward(dout, cache):
    z, W_Q, W_K, W_V, W_O, q, k, v, att, a = cache
    dh = W_Q.shape[-1]
    dW_O = np.einsum("nhte,ntd->hed", a, dout)  # (h, dh, d)
    da = np.einsum("ntd,hed->nhte", dout, W_O)  # (N, 3, d) -> (N, h, 3, dh)
    datt = da @ v.swapaxes(-1, -2)  # (N, h, 3, 3)
    dv = att.swapaxes(-1, -2) @ da  # (N, h, 3, dh): each key position collects from its queries
    # softmax backward, row by row
    dscores = att * (datt - (att * datt).sum(axis=-1, keepdims=True)) / np.sqrt(dh)  # (N, h, 3, 3)
    dq = dscores @ k  # (N, h, 3, dh)
    dk = dscores.swapaxes(-1, -2) @ q  # (N, h, 3, dh)
    grads = {"W_Q": np.einsum("ntd,nhte->hde", z, dq), "W_K": np.einsum("ntd,nhte->hde", z, dk),
             "W_V": np.einsum("ntd,nhte->hde", z, dv), "W_O": dW_O}  # (h, d, dh) each, then (h, dh, d)
    # z fed the queries, the keys and the values: its gradient is the sum of the three paths
    dz = sum(np.einsum("nhte,hde->ntd", dx, W) for dx, W in ((dq, W_Q), (dk, W_K), (dv, W_V)))
    return dz, grads  # dz (N, 3, d)


def dropout_forward(h, mask):
    """Inverted dropout with a given mask (0, or 1 / (1 - rate), per entry); None: no dropout."""
    return h if mask is None else h * mask


def dropout_backward(dout, mask):
    return dout if mask is None else dout * mask  # the same mask: kept entries pass, scaled


def mlp_forward(z, W_in, W_out):
    hid = np.maximum(z @ W_in, 0)  # (N, 3, d) -> (N, 3, 4d): the ReLU 'neurons', every position
    return hid @ W_out, (z, W_in, W_out, hid)  # (N, 3, 4d) -> (N, 3, d)


def mlp_backward(dout, cache):
    z, W_in, W_out, hid = cache
    dpre = (dout @ W_out.T) * (hid > 0)  # (N, 3, d) -> (N, 3, 4d); ReLU passes it only where on
    grads = {"W_in": np.einsum("ntd,ntf->df", z, dpre), "W_out": np.einsum("ntf,ntd->fd", hid, dout)}
    return dpre @ W_in.T, grads  # (N, 3, 4d) -> (N, 3, d)


def unembed_forward(z, W_U):
    logits_all = z @ W_U  # (N, 3, d) -> (N, 3, C): a prediction at every position
    return logits_all[:, -1], (z, W_U)  # (N, C): only the one made at '=' is used


def unembed_backward(dlogits, cache):
    z, W_U = cache
    dall = np.zeros(z.shape[:2] + W_U.shape[1:], dtype=dlogits.dtype)  # (N, 3, C)
    dall[:, -1] = dlogits  # positions 0 and 1 were not read: zero gradient there
    return dall @ W_U.T, {"W_U": np.einsum("ntd,ntc->dc", z, dall)}  # (N, 3, d); (d, C)


def cross_entropy_forward(logits, y, classes, mask=None):
    """sum_t w_t mean_n -log softmax_t(logits)[y_t], w_t = m_t / ln(q_t) / sum(m).

    Task t owns logits' columns off_t : off_t + q_t. Dividing by ln q_t puts every task at 1 at
    chance (uniform p = 1/q). A loop over the task heads: clearer than miiii.py's segment sums,
    and this file is not the hot path.
    """
    m = np.ones(len(classes)) if mask is None else np.asarray(mask, dtype=np.float64)
    weights = m / np.log(classes) / m.sum()  # (T,)
    offsets = np.cumsum([0] + list(classes))  # (T + 1,): where each head's columns start
    rows = np.arange(len(y))
    loss, probs = 0.0, []
    for t in range(len(classes)):
        z = logits[:, offsets[t]:offsets[t + 1]]  # (N, q_t): head t
        e = np.exp(z - z.max(axis=1, keepdims=True))  # shifted: same softmax, no overflow
        p = e / e.sum(axis=1, keepdims=True)  # (N, q_t)
        loss += weights[t] * -np.log(p[rows, y[:, t]]).mean()
        probs.append(p)
    return float(loss), (probs, y, weights)


def cross_entropy_backward(cache):
    probs, y, weights = cache
    rows = np.arange(len(y))
    heads = []
    for t, p in enumerate(probs):
        d = p.copy()
        d[rows, y[:, t]] -= 1.0  # d(-log p_y) / dz = p - onehot(y)
        heads.append(d * weights[t] / len(y))  # the weight, and the mean over samples
    return np.concatenate(heads, axis=1)  # (N, C)


def forward(params, x, dropout_masks=(None, None)):
    """Logits (N, C) at '=' for x (N, 3) = [x0, x1, '='], with dropout after each residual.

    dropout_masks: two (N, 3, d) masks or None; only [:, 2] reaches the logits (miiii draws (N, d)).
    """
    drop1, drop2 = dropout_masks
    z0, emb = embedding_forward(x, params["tok_emb"], params["pos_emb"])  # (N, 3, d)
    attn_out, attn = attention_forward(z0, params["W_Q"], params["W_K"], params["W_V"], params["W_O"])
    z1 = dropout_forward(z0 + attn_out, drop1)  # (N, 3, d): residual, then dropout
    mlp_out, mlp = mlp_forward(z1, params["W_in"], params["W_out"])
    z2 = dropout_forward(z1 + mlp_out, drop2)  # (N, 3, d): residual, then dropout
    logits, unembed = unembed_forward(z2, params["W_U"])  # (N, C)
    cache = {"emb": emb, "attn": attn, "mlp": mlp, "unembed": unembed, "drop1": drop1, "drop2": drop2,
             "hid": mlp[-1], "att": attn[-2]}  # the neurons (N, 3, 4d), attention weights (N, h, 3, 3)
    return logits, cache


def backward(dlogits, cache):
    """Every parameter's gradient given d loss / d logits: the layers of forward() in reverse."""
    dz2, grads = unembed_backward(dlogits, cache["unembed"])
    dz2 = dropout_backward(dz2, cache["drop2"])
    dz1, mlp_grads = mlp_backward(dz2, cache["mlp"])
    dz1 = dropout_backward(dz1 + dz2, cache["drop1"])  # + dz2: the residual around the MLP
    dz0, attn_grads = attention_backward(dz1, cache["attn"])
    dz0 = dz0 + dz1  # the residual around attention
    return {**grads, **mlp_grads, **attn_grads, **embedding_backward(dz0, cache["emb"])}


def loss_and_grads(params, x, y, classes, mask=None, dropout_masks=(None, None)):
    """The loss on (x, y) and its gradient for every parameter; classes: q of each task head."""
    logits, cache = forward(params, x, dropout_masks)
    loss, ce_cache = cross_entropy_forward(logits, y, classes, mask)
    return loss, backward(cross_entropy_backward(ce_cache), cache)
