//! The bundled font. plotters' bitmap backend rasterizes text itself, so it needs font data; we
//! ship DejaVu Sans (assets/, Bitstream Vera license beside it) and register it with plotters'
//! `ab_glyph` backend under the generic family name every plot uses, so text renders the same
//! on any machine without fonts installed. SVG output names the same generic family and leaves
//! the choice of face to the viewer.

use std::sync::OnceLock;

/// The family name every plot asks for.
pub const FAMILY: &str = "sans-serif";

static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
static REGISTERED: OnceLock<bool> = OnceLock::new();

/// Registers the bundled font once; returns whether text can be drawn. A failure is reported,
/// never a panic: plots then lose their text, and the report says why.
pub fn ensure() -> bool {
    *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FAMILY, plotters::style::FontStyle::Normal, FONT).is_ok()
    })
}
