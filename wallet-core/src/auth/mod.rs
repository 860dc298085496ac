//! Authentication: passwords, session tokens and rate limiting. Pure computation, no I/O.
