//! vigil-collector
