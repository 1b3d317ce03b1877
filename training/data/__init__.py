"""Data sources (benchmark sets, folders, rosbag2), degradation and training patches."""
