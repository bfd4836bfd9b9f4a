"""Every test runs offline: nothing may reach the model hub."""

from nodes.sd.offline import stay_offline

stay_offline()
