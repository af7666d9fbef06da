//! vigil-dashboards: the web UI (ROI, drift, experiment results).
//!
//! Not built yet (issue "Dashboards"). This crate exists so the workspace layout is final; it
//! exports nothing and no command uses it.
