//! Loopback HTTP tests of the simulator.
