"""The image-filtering libraries fastconv is compared with on the CPU: cv2.filter2D,
scipy.ndimage.correlate and scipy.signal.correlate, forward only and only for the cases
where they compute exactly the case's output."""

import numpy as np
import torch

PEERS = ("cv2.filter2D", "scipy.ndimage", "scipy.signal")
# fastconv's forward+backward against this many of filter2D's forwards (the target).
FILTER2D_BWD_FACTOR = 3
FILTER2D_BWD_NAME = f"{FILTER2D_BWD_FACTOR}x cv2.filter2D"


def setup_peers(threads):
    """Match the libraries' thread counts to torch's; {name: version} of those installed."""
    found = {}
    try:
        import cv2

        cv2.setNumThreads(threads)
        found["cv2.filter2D"] = cv2.__version__
    except ImportError:
        pass
    try:
        import scipy
        import scipy.ndimage  # noqa: F401
        import scipy.signal  # noqa: F401

        found["scipy.ndimage"] = found["scipy.signal"] = scipy.__version__
    except ImportError:
        pass
    return found


def peer_fns(case, x, w, threads):
    """{name: callable computing the case's output as a list of 2-D NumPy planes} for the
    image libraries that compute exactly the same thing: one kernel per channel, stride 1,
    dilation 1, zero border, output no larger than the image. Users loop over planes, so
    the loop is part of the cost. {} for every other case."""
    if (case.groups, case.K, case.stride, case.dilation) != (case.C, case.C, 1, 1):
        return {}
    (P, Q), p, R, S = case.out_hw, case.padding, case.R, case.S
    if P > case.H or Q > case.W or p > min(R, S) - 1:
        return {}
    xs, ws = x.numpy(), w[:, 0].numpy()
    planes = [(n, c) for n in range(case.N) for c in range(case.C)]
    fns = {}
    try:
        import cv2

        # dst(y, x) = sum k(y', x') src(y + y' - anchor.y, x + x' - anchor.x); anchor is (x, y)
        def run_cv2():
            return [
                cv2.filter2D(xs[n, c], -1, ws[c], anchor=(p, p), borderType=cv2.BORDER_CONSTANT)[
                    :P, :Q
                ]
                for n, c in planes
            ]

        fns["cv2.filter2D"] = run_cv2
    except ImportError:
        pass
    try:
        import scipy.fft
        from scipy import ndimage, signal

        origin = (p - R // 2, p - S // 2)  # filter centre at k // 2 + origin

        def run_ndimage():
            return [
                ndimage.correlate(xs[n, c], ws[c], mode="constant", cval=0.0, origin=origin)[:P, :Q]
                for n, c in planes
            ]

        if p == 0:
            mode, crop = "valid", (slice(None), slice(None))
        elif R % 2 and S % 2 and p == (R - 1) // 2 == (S - 1) // 2:
            mode, crop = "same", (slice(None), slice(None))
        else:
            mode, crop = "full", (slice(R - 1 - p, R - 1 - p + P), slice(S - 1 - p, S - 1 - p + Q))

        def run_signal():  # method="auto": direct or FFT by its own cost model
            with scipy.fft.set_workers(threads):
                return [signal.correlate(xs[n, c], ws[c], mode=mode)[crop] for n, c in planes]

        fns["scipy.ndimage"] = run_ndimage
        fns["scipy.signal"] = run_signal
    except ImportError:
        pass
    return fns


def planes_err(planes, ref):
    """Max abs error of a list of NumPy planes against the float64 reference [N, C, P, Q]."""
    got = torch.from_numpy(np.stack(planes)).double()
    return (got - ref.reshape(got.shape)).abs().max().item() if got.numel() else 0.0
