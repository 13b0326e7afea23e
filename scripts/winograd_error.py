"""Float32 error of Winograd F(2x2, 3x3) and F(4x4, 3x3) against the exact convolution.

Why ember's Winograd kernels stop at F(2x2, 3x3): ember's kernels must equal candle's ops to
1e-5 relative in f32, and F(4x4, 3x3) (Lavin & Gray's points 0, ±1, ±2) does not at 256 and more
input channels. For random inputs and He-scaled weights, one output tile per trial, this prints
the largest error relative to the tile's largest output, both algorithms, per channel count.

    python3 scripts/winograd_error.py

Needs numpy only. Measured 2026-12-02: F(4x4) 4.7e-06 (64 channels), 1.7e-05 (256), 2.0e-05
(512); F(2x2) 3.8e-07 to 9.9e-07.
"""

import numpy as np

# F(4x4, 3x3): input transform Bᵀ (6x6), kernel transform G (6x3), output transform Aᵀ (4x6).
BT4 = np.array(
    [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
     [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], dtype=np.float64)
G4 = np.array(
    [[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
     [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]], dtype=np.float64)
AT4 = np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]], dtype=np.float64)
# F(2x2, 3x3), as ember's winograd.rs computes it.
BT2 = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=np.float64)
G2 = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], dtype=np.float64)
AT2 = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=np.float64)


def winograd_tile(d, g, bt, gm, at):
    """One output tile in float32: `d` is `c x a x a` input, `g` is `c x 3 x 3` weights."""
    bt, gm, at = (m.astype(np.float32) for m in (bt, gm, at))
    v = np.einsum("ij,cjk,lk->cil", bt, d.astype(np.float32), bt)
    u = np.einsum("ij,cjk,lk->cil", gm, g.astype(np.float32), gm)
    return at @ (u * v).sum(0, dtype=np.float32) @ at.T


def main():
    rng = np.random.default_rng(0)
    for c in (64, 128, 256, 512):
        worst4 = worst2 = 0.0
        for _ in range(20):
            d = rng.standard_normal((c, 6, 6))
            g = rng.standard_normal((c, 3, 3)) * np.sqrt(2 / (9 * c))
            exact = np.array([[(d[:, i:i + 3, j:j + 3] * g).sum() for j in range(4)] for i in range(4)])
            scale = np.abs(exact).max()
            worst4 = max(worst4, np.abs(winograd_tile(d, g, BT4, G4, AT4) - exact).max() / scale)
            worst2 = max(worst2, np.abs(winograd_tile(d[:, :4, :4], g, BT2, G2, AT2) - exact[:2, :2]).max() / scale)
        print(f"{c:4} channels: F(4x4, 3x3) {worst4:.1e}, F(2x2, 3x3) {worst2:.1e}")


if __name__ == "__main__":
    main()
