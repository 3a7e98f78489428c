"""Mobility: SUMO networks, demand, sessions (libsumo/TraCI/GUI) and the SimPy mobility layer."""
