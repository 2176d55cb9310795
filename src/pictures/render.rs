//! One drawing, two files: a [`Picture`] draws itself on any plotters backend, and [`write`]
//! renders it as SVG and as PNG (encoded with `png`, so both are written atomically).

use super::font::ensure_registered;
use anyhow::{anyhow, Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::{Path, PathBuf};

/// Something drawable at a fixed size in pixels.
pub trait Picture {
    fn size(&self) -> (u32, u32);
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static;
}

/// A drawing error as an `anyhow` error.
pub fn de<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing a picture: {e:?}")
}

pub fn render_svg(p: &impl Picture) -> Result<String> {
    ensure_registered();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, p.size()).into_drawing_area();
        p.draw(&root)?;
        root.present().map_err(de)?;
    }
    Ok(svg)
}

pub fn render_png(p: &impl Picture) -> Result<Vec<u8>> {
    ensure_registered();
    let (w, h) = p.size();
    let mut rgb = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        p.draw(&root)?;
        root.present().map_err(de)?;
    }
    let mut bytes = Vec::new();
    let mut enc = png::Encoder::new(&mut bytes, w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header().context("encoding a PNG")?;
    writer.write_image_data(&rgb).context("encoding a PNG")?;
    writer.finish().context("encoding a PNG")?;
    Ok(bytes)
}

/// Writes `<dir>/<stem>.svg` and `<dir>/<stem>.png`; returns their paths.
pub fn write(dir: &Path, stem: &str, p: &impl Picture) -> Result<Vec<PathBuf>> {
    let svg = dir.join(format!("{stem}.svg"));
    crate::fsutil::write_atomic(&svg, render_svg(p)?.as_bytes())?;
    let png = dir.join(format!("{stem}.png"));
    crate::fsutil::write_atomic(&png, &render_png(p)?)?;
    Ok(vec![svg, png])
}

/// A text style of the embedded font, anchored at `pos`.
pub fn text(size: f64, color: RGBColor, pos: (HPos, VPos)) -> TextStyle<'static> {
    TextStyle {
        font: (super::font::FAMILY, size).into_font(),
        color: color.to_backend_color(),
        pos: Pos::new(pos.0, pos.1),
    }
}

/// [`text`] in bold.
pub fn bold(size: f64, color: RGBColor, pos: (HPos, VPos)) -> TextStyle<'static> {
    let mut t = text(size, color, pos);
    t.font = t.font.style(FontStyle::Bold);
    t
}

/// Draws `s` at pixel `at` with `style`.
pub fn label<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    s: &str,
    at: (i32, i32),
    style: &TextStyle,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    root.draw(&Text::new(s.to_string(), at, style.clone()))
        .map_err(de)
}
