"""Data: procedural scenes, their camera/LiDAR rendering, Waymo-layout readers and partitions."""
