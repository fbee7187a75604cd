//! The NetSuite simulator (filled in by the sim helper).
