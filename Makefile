# One-command entry points. Both create .venv with pinned versions on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The real `ros2 launch` (launch, launch_ros, ros2cli), as wheels beside the repository in CI;
# absent in a user's clone, where the tests that need it skip and say why.
LAUNCH_WHEELS := ../shared/ros2_launch_wheels
LAUNCH_STAMP := $(VENV)/.launch-installed
# Upstream image_geometry (the camera model downstream nodes read camera_info with), as a wheel
# beside the repository in CI; absent in a user's clone, where its tests skip and say why.
GEOMETRY_WHEELS := ../shared/ros2_image_geometry
GEOMETRY_STAMP := $(VENV)/.image-geometry-installed
# A second venv with ROS 2 Jazzy's wheels (rclpy 7.x) for the ROS-facing tests.
JAZZY_VENV := .venv-jazzy
JAZZY_PY := $(JAZZY_VENV)/bin/python
JAZZY_STAMP := $(JAZZY_VENV)/.installed
JAZZY_TESTS := test/test_ros_distro.py test/test_node.py test/test_node_conventions.py \
	test/test_node_startup.py test/test_node_slow.py test/test_launch.py \
	test/test_precision_choice.py
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST

.PHONY: setup setup-jazzy demo demo-real test test-jazzy lint bench clean

setup: $(STAMP) $(if $(wildcard $(LAUNCH_WHEELS)/README.md),$(LAUNCH_STAMP)) \
	$(if $(wildcard $(GEOMETRY_WHEELS)/README.md),$(GEOMETRY_STAMP))

$(STAMP): requirements.txt setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# Order and versions from $(LAUNCH_WHEELS)/README.md: the PyPI ROS wheels first (requirements.txt).
$(LAUNCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet --find-links $(LAUNCH_WHEELS) ros-ros2launch==0.28.0 \
		ros-ros2run==0.36.1 ros-launch-xml==3.7.1
	touch $(LAUNCH_STAMP)

$(GEOMETRY_STAMP): $(STAMP)
	$(PY) -m pip install --quiet --find-links $(GEOMETRY_WHEELS) ros-image-geometry
	touch $(GEOMETRY_STAMP)

setup-jazzy: $(JAZZY_STAMP)

$(JAZZY_STAMP): requirements-jazzy.txt setup.py
	$(PYTHON) -m venv $(JAZZY_VENV)
	$(JAZZY_PY) -m pip install --quiet -r requirements-jazzy.txt
	$(JAZZY_PY) -m pip install --quiet --no-deps -e .
	touch $(JAZZY_STAMP)

demo: setup
	$(PY) -m dsr_ros.ros.demo --out out/demo

# Real PrimeSense frames through the node as image_proc's decimation publishes them (needs
# ../shared/data); the table and the zoomed-crop figure of README.
demo-real: setup
	$(PY) -m benchmarks.real_camera --out out/demo_real --model lite \
		--figure out/demo_real/real_camera.png

test: setup setup-jazzy
	DSR_ROS_TEST_DISTRO=kilted $(PY) -m pytest -ra test
	$(MAKE) --no-print-directory test-jazzy

test-jazzy: setup-jazzy
	DSR_ROS_TEST_DISTRO=jazzy $(JAZZY_PY) -m pytest -ra $(JAZZY_TESTS)

lint: setup
	$(PY) -m flake8 dsr_ros training benchmarks test launch setup.py

bench: setup
	$(PY) -m benchmarks --out out/benchmark

clean:
	rm -rf $(VENV) $(JAZZY_VENV) build install log out
