# SPDX-License-Identifier: Apache-2.0
"""segdip_ros: online interactive semantic segmentation (SegDIP) for ROS 2.

The engine lives in `segdip_ros.core` and imports no ROS; the node and tools adapt it.
"""

__version__ = '0.1.0'
