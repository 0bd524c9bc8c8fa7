"""Shape rules shared by the fake kernels (torch.compile / torch.export) and the benchmarks:
the same formulas as csrc/conv_geometry.h."""


def conv_out_size(size, kernel, padding, stride, dilation):
    """Output length of one spatial dimension of a convolution; 0 when the dilated kernel
    does not fit the padded input."""
    span = dilation * (kernel - 1) + 1
    padded = size + 2 * padding
    return 0 if padded < span else (padded - span) // stride + 1
