"""pyvswitch: the Open vSwitch datapath re-built in Python."""

__version__ = "0.1.0"
