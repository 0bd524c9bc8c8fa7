"""fastconv's benchmarks: `python -m benchmarks` (or `make bench`); see __main__.py.

Modules, one job each:

    cases     the convolution cases and their suites (Case, Suite, SUITES, select, MODES)
    inputs    the tensors a case runs on (make_inputs, DTYPES)
    peak      the device's name and peak GFLOP/s
    timing    timing a call or a model step; other processes' CPU use meanwhile
    peers     the image-filtering peers: cv2.filter2D, scipy.ndimage, scipy.signal
    memory    peak extra memory of one call, in a fresh process (python -m benchmarks.memory)
    runner    one case end to end: accuracy, every implementation's timings, result rows
    report    tables, the geometric-mean summary, results.md and speedup.png
    models    the models suite: whole torchvision models, converted vs original
    zoo       the zoo suite: every distinct conv layer of torchvision's models
    __main__  the command line

Imports point one way (A -> B: A imports B; tests/test_bench.py checks this graph):

    __main__ -> cases, inputs, models, peak, peers, report, runner, timing, zoo
    zoo      -> cases, models, report, timing
    models   -> report, timing
    runner   -> cases, inputs, memory, peers, timing
    report   -> cases, peers
    memory   -> cases, inputs
    cases, inputs, peak, peers, timing -> nothing in the package
"""
