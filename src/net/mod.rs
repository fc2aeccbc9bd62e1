//! Live verification: the only module that touches sockets (wire format, listener, prober).
