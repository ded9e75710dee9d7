"""The child of tests/test_cpu_levels.py: run in a fresh Python (maybe under qemu as an older CPU).

    python tests/_cpu_levels_child.py [OUT.npz [DIRECT]]

prints core_info() as one JSON line, computes a fixed set of results with the kernel core (activations,
dense forward and backward, softmax cross-entropy, Adam, training epochs of two MLPs, convolution forward
and backward, a CNN's epoch; float32 and float64), saves them into OUT.npz when given, and checks them
against the float64 NumPy references (tests/_reference.py); it exits 1 naming each mismatch.  DIRECT (1 or 0)
runs every small product with the core's own loop (``_small.h``) or with BLAS, whatever the copy's choice.

Kept small and fast: under qemu every line runs emulated.  Running this file puts tests/ on sys.path, so
``_reference`` imports as in the tests.
"""

import json
import sys

import numpy as np

import fastnn.functional as F

import _reference as R

DTYPES = (np.float32, np.float64)
#: Tolerances against the float64 references (those of tests/test_kernels.py and tests/test_train.py).
TOL = {np.float32: dict(rtol=2e-4, atol=2e-4), np.float64: dict(rtol=1e-9, atol=1e-9)}
EPOCH_TOL = {np.float32: dict(rtol=2e-4, atol=2e-5), np.float64: dict(rtol=1e-10, atol=1e-12)}
DENSE_SHAPES = ((7, 5, 3), (33, 17, 9), (64, 130, 70), (200, 300, 129))  # the last is cut into parts
MLPS = {"mlp": ([12, 10, 5], ["sigmoid", "softmax"]), "deep": ([12, 9, 7, 5], ["relu", "tanh", "softmax"])}
CNN = ([("conv", 1, 4, 3, 1, "same", "relu"), ("pool", 2), ("conv", 4, 6, 3, 2, "valid", "tanh"), ("flatten",),
        ("dense", 54, 10, "relu"), ("dense", 10, 5, "softmax")], (16, 16, 1))


def mlp_reference(sizes, acts, X, T, orders, theta, optimizer, lr, bs):
    """Training epochs of the MLP step by step in float64 NumPy: parameters, loss per epoch, steps."""
    theta = theta.astype(np.float64)
    offsets, _ = F.parameter_offsets(sizes)
    m1, m2 = np.zeros_like(theta), np.zeros_like(theta)
    L, step, losses = len(sizes) - 1, 0, []
    for order in orders:
        total = 0.0
        for s in range(0, len(order), bs):
            idx = order[s:s + bs]
            h, records = X[idx].astype(np.float64), []
            for l, (w_off, b_off) in enumerate(offsets):
                W = theta[w_off:w_off + sizes[l] * sizes[l + 1]].reshape(sizes[l], sizes[l + 1])
                act = "linear" if l == L - 1 else acts[l]  # the loss takes the logits
                _, post = R.dense_forward(h, W, theta[b_off:b_off + sizes[l + 1]], act)
                records.append((h, post, W, act))
                h = post
            loss, _, delta, _ = R.softmax_cross_entropy(h, T[idx])
            total += loss
            grad = np.zeros_like(theta)
            for l in range(L - 1, -1, -1):
                x, post, W, act = records[l]
                w_off, b_off = offsets[l]
                gW, gb, delta = R.dense_backward(delta, post, x, W, act)
                grad[w_off:w_off + W.size] = gW.ravel()
                grad[b_off:b_off + W.shape[1]] = gb
            step += 1
            if optimizer == "adam":
                R.adam([theta], [grad], [m1], [m2], step, lr)
            else:
                R.sgd([theta], [grad], lr)
        losses.append(total)
    return theta, np.array(losses), step


def mlp_epochs(sizes, acts, X, T, orders, theta, optimizer, lr, bs, dtype):
    """The same epochs with fastnn's compiled epoch (train_epoch)."""
    plan = F.epoch_plan(sizes, acts, "cross_entropy", optimizer=optimizer, batch_size=bs, dtype=dtype)
    theta, state, step, losses = theta.astype(dtype), plan.new_state(), 0, []
    for order in orders:
        r = F.train_epoch(plan, X.astype(dtype), T.astype(dtype), order, theta, state, lr=lr, step=step)
        step = r.step
        losses.append(r.loss)
    return theta, np.array(losses), step


def results(dtype, with_reference):
    """name -> (fastnn's result, its float64 reference or None, tolerance) for one dtype."""
    rng = np.random.default_rng(20240601)
    tol, out = TOL[dtype], {}

    def put(name, got, ref, t=tol):
        out[f"{name}:{np.dtype(dtype).name}"] = (np.asarray(got), None if ref is None else np.asarray(ref), t)

    Z = (rng.standard_normal((13, 37)) * 6).astype(dtype)  # float32 exp/tanh well outside [-1, 1]
    for act in ("sigmoid", "tanh", "relu", "softmax"):
        put(f"activation_{act}", F.activation(Z, act), R.activation(Z, act) if with_reference else None)
    for n, k, m in DENSE_SHAPES:
        X = rng.standard_normal((n, k)).astype(dtype)
        W = (rng.standard_normal((k, m)) / np.sqrt(k)).astype(dtype)
        b = rng.standard_normal(m).astype(dtype)
        delta = rng.standard_normal((n, m)).astype(dtype)
        for act in ("sigmoid", "tanh") if n < 200 else ("relu",):
            pre, post = F.dense_forward(X, W, b, act)
            grads = F.dense_backward(delta, post, X, W, act)
            ref = R.dense_forward(X, W, b, act) if with_reference else (None, None)
            gref = R.dense_backward(delta, post, X, W, act) if with_reference else (None,) * 3
            for what, got, want in zip(("pre", "post", "grad_W", "grad_b", "grad_X"), (pre, post) + grads,
                                       ref + gref):
                put(f"dense_{what}_{n}x{k}x{m}_{act}", got, want)
    logits = (rng.standard_normal((37, 11)) * 20).astype(dtype)
    labels = rng.integers(0, 11, 37)
    r = F.softmax_cross_entropy(logits, labels)
    ref = R.softmax_cross_entropy(logits, np.eye(11)[labels]) if with_reference else (None,) * 4
    put("softmax_ce_loss", r.loss, ref[0], dict(rtol=tol["rtol"], atol=1e-3))
    put("softmax_ce_delta", r.delta, ref[2])
    params = [rng.standard_normal((9, 7)).astype(dtype), rng.standard_normal(20000).astype(dtype)]
    m1, m2 = [np.zeros_like(p) for p in params], [np.zeros_like(p) for p in params]
    ref_p = [p.astype(np.float64) for p in params]
    ref_m1, ref_m2 = [np.zeros_like(p) for p in ref_p], [np.zeros_like(p) for p in ref_p]
    for step in (1, 2, 3):
        grads = [rng.standard_normal(p.shape).astype(dtype) for p in params]
        F.adam_update(params, grads, m1, m2, step, 1e-2, weight_decay=1e-3)
        R.adam(ref_p, [g.astype(np.float64) for g in grads], ref_m1, ref_m2, step, 1e-2, wd=1e-3)
    for i in range(2):
        put(f"adam_param{i}", params[i], ref_p[i] if with_reference else None)
        put(f"adam_v{i}", m2[i], ref_m2[i] if with_reference else None)
    for name, (sizes, acts) in MLPS.items():
        X = rng.random((83, sizes[0]))  # batches of 16 and a short last one
        T = np.eye(sizes[-1])[rng.integers(0, sizes[-1], 83)]
        theta0 = rng.standard_normal(F.parameter_offsets(sizes)[1]) * 0.5
        orders = [rng.permutation(83) for _ in range(3)]
        for optimizer, lr in (("sgd", 0.05), ("adam", 2e-3)):
            got = mlp_epochs(sizes, acts, X, T, orders, theta0, optimizer, lr, 16, dtype)
            want = mlp_reference(sizes, acts, X, T, orders, theta0, optimizer, lr, 16) if with_reference else None
            for i, what in enumerate(("theta", "loss", "step")):
                put(f"epoch_{name}_{optimizer}_{what}", got[i], want[i] if want else None, EPOCH_TOL[dtype])
    X = rng.standard_normal((3, 11, 10, 3)).astype(dtype)
    for k, stride, padding, act in ((3, 1, "same", "relu"), (3, 2, "valid", "tanh"), (2, 2, "same", "sigmoid")):
        W = (rng.standard_normal((k, k, 3, 5)) / np.sqrt(9 * k)).astype(dtype)
        b = rng.standard_normal(5).astype(dtype)
        pre, post = F.conv2d_forward(X, W, b, act, stride=stride, padding=padding)
        delta = rng.standard_normal(post.shape).astype(dtype)
        grads = F.conv2d_backward(delta, post, X, W, act, stride=stride, padding=padding)
        ref = R.conv2d_forward(X, W, b, act, stride, padding) if with_reference else (None, None)
        gref = R.conv2d_backward(delta, post, X, W, act, stride, padding) if with_reference else (None,) * 3
        for what, got, want in zip(("pre", "post", "grad_W", "grad_b", "grad_X"), (pre, post) + grads, ref + gref):
            put(f"conv_{what}_k{k}s{stride}{padding}_{act}", got, want)
    # a small CNN's compiled epoch (no reference here: tests/test_conv_kernels.py has one)
    layers, shape = CNN
    plan = F.network_plan(layers, shape, "cross_entropy", optimizer="adam", batch_size=12, dtype=dtype)
    X = rng.standard_normal((53,) + shape).astype(dtype)
    T = np.eye(5)[rng.integers(0, 5, 53)].astype(dtype)
    theta, state = (rng.standard_normal(plan.n_params) * 0.3).astype(dtype), plan.new_state()
    r = F.train_epoch(plan, X, T, rng.permutation(53), theta, state, lr=1e-3)
    put("cnn_epoch_theta", theta, None)
    put("cnn_epoch_loss", r.loss, None)
    return out


def main(argv):
    if len(argv) > 2:
        from fastnn._kernels import _core

        _core._test_direct(int(argv[2]))
    print(json.dumps(F.core_info()), flush=True)
    found = {name: entry for dtype in DTYPES for name, entry in results(dtype, True).items()}
    if len(argv) > 1:
        np.savez(argv[1], **{name: got for name, (got, _, _) in found.items()})
    failures, checked = [], 0
    for name, (got, want, tol) in found.items():
        if want is None:
            continue
        checked += 1
        try:
            np.testing.assert_allclose(got, want, **tol)
        except AssertionError as exc:
            failures.append(f"{name}: {' '.join(str(exc).split())[:300]}")
    for line in failures:
        print("MISMATCH", line)
    print(f"checked {checked} results against the references: {len(failures)} mismatches")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
