//! The font of every picture (a run's `plots/`, a report's plots). plotters' `ttf` feature
//! finds system fonts through font-kit, which needs fontconfig and freetype on the machine; its
//! `ab_glyph` feature is pure Rust but has no fonts of its own. We register DejaVu Sans (Bitstream Vera licence), which the `dejavu`
//! crate ships inside its source, so PNG text renders the same everywhere and nothing is read
//! from the system or downloaded. SVG files name the family `sans-serif`; viewers use their own.

use std::sync::Once;

/// The family name the plots ask for.
pub const FAMILY: &str = "sans-serif";

/// Registers the font with plotters (once per process).
pub fn ensure_registered() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        use plotters::style::FontStyle;
        let faces: [(FontStyle, &'static [u8]); 3] = [
            (FontStyle::Normal, dejavu::sans::regular()),
            (FontStyle::Bold, dejavu::sans::bold()),
            (FontStyle::Oblique, dejavu::sans::oblique()),
        ];
        for (style, bytes) in faces {
            if plotters::style::register_font(FAMILY, style, bytes).is_err() {
                tracing::warn!(
                    "could not load the embedded DejaVu Sans font; plot text may be missing"
                );
            }
        }
    });
}
