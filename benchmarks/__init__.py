"""Speed benchmarks of dsr_ros: tools beside the package, never installed, never imported by it.

``python -m benchmarks`` (``make bench``) times the bare net, the numpy wrapper and the ROS
node over DDS, with a 2048^3 fp32 matmul measured in the same run as the yardstick of what this
CPU can do, and the speed options as ratios measured in the same run. ``python -m
benchmarks.pareto`` builds the model ladder's speed/quality table and plot. One module per job:

* :mod:`benchmarks.frames`: the depth frame the benchmark feeds (a procedural room with holes),
* :mod:`benchmarks.flops`: convolution FLOPs per frame, counted from module shapes,
* :mod:`benchmarks.memory`: peak memory of a measurement, and of one frame in a fresh
  process (``python -m benchmarks.memory``: the calibration of dsr_ros.memory_budget),
* :mod:`benchmarks.timing`: interleaved timing in a worker thread, summaries,
* :mod:`benchmarks.matmul`: the matmul reference,
* :mod:`benchmarks.variants`: ways of running the net (precision, layout, compile, ONNX
  Runtime, CUDA graphs, pinned memory),
* :mod:`benchmarks.models`: which networks are measured,
* :mod:`benchmarks.model_timing`: bare-net and wrapper measurements,
* :mod:`benchmarks.node_timing`: the node through DDS,
* :mod:`benchmarks.report`: Markdown and JSON,
* :mod:`benchmarks.cli`: the command line of ``python -m benchmarks``.
"""
