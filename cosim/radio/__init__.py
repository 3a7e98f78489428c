"""Radio: 3GPP TR 38.901 channel, SINR, handoffs, transfers and link windows (SimPy + numpy)."""
