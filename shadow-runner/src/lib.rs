//! vigil-shadow-runner: replays captured traffic against candidate models and compares them with
//! production.
//!
//! Not built yet (issue "Shadow runner"). This crate exists so the workspace layout is final; it
//! exports nothing and no command uses it.
