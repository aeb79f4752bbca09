"""What a pipeline can be asked for: the one list of each choice.

Imports nothing heavy, so the ROS parameter table and the launch file (which must not load torch)
share these lists with the pipeline instead of keeping copies that drift.
"""

BACKENDS = ("torch", "tensorrt", "cuda-graph")
DEVICES = ("auto", "cuda", "cpu")
PRECISIONS = ("fp32", "fp16", "int8")
OUTPUT_SIZES = ("network", "input")
MIN_INPUT_SIDE = 32  # the encoder downsamples 32x; anything smaller has no feature map left
MAX_INPUT_SIDE = 8192  # beyond this a single frame would not fit in a Jetson's memory anyway
MAX_BATCH = 64  # cameras through one network pass: more than any robot carries
