"""Network definitions shared by the node and the training pipeline (torch only)."""

from dsr_ros.networks.dsrnet import (DSRNet, PROJECTION_PARAMS, RESIDUAL_BASES,
                                     SUPPORTED_SCALES)

__all__ = ['DSRNet', 'PROJECTION_PARAMS', 'RESIDUAL_BASES', 'SUPPORTED_SCALES']
