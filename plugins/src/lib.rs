//! Antiphon plugin.
