//! The canonical layout of `.flt` source (`flotilla fmt`, LSP formatting).
