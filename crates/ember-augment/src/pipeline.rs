//! A pipeline of transforms written as text, for command lines and configs:
//! `Pipeline::parse("pad-crop:4,hflip,noise:0.1")`.
//! See [`Pipeline`] for the vocabulary.

use rand::rngs::StdRng;
use rand::Rng;

use crate::sample::{Image, SamplePixel};
use crate::{
    CenterCrop, ColorJitter, Cutout, Error, GaussianBlur, GaussianNoise, Interpolation, PaddingMode, RandomAffine,
    RandomCrop, RandomErasing, RandomGrayscale, RandomHorizontalFlip, RandomResizedCrop, RandomRotation,
    RandomVerticalFlip, Resize, ResizeShorter, Result, SaltAndPepper, Transform, TrivialAugmentWide,
};

/// Every op name [`Pipeline::parse`] knows.
pub const OP_NAMES: &[&str] = &[
    "none",
    "pad-crop",
    "crop",
    "center-crop",
    "resize",
    "resize-short",
    "resized-crop",
    "hflip",
    "vflip",
    "rotate",
    "affine",
    "jitter",
    "gray",
    "blur",
    "noise",
    "salt-pepper",
    "erase",
    "cutout",
    "trivial",
];

#[derive(Debug, Clone, PartialEq)]
enum Op {
    Identity,
    PadCrop { padding: u32, mode: PaddingMode },
    Crop(RandomCrop),
    CenterCrop(CenterCrop),
    Resize(Resize),
    ResizeShorter(ResizeShorter),
    ResizedCrop(RandomResizedCrop),
    HFlip(RandomHorizontalFlip),
    VFlip(RandomVerticalFlip),
    Rotate(RandomRotation),
    Affine(RandomAffine),
    Jitter(ColorJitter),
    Gray(RandomGrayscale),
    Blur(GaussianBlur),
    Noise(GaussianNoise),
    SaltPepper(SaltAndPepper),
    Erase(RandomErasing),
    Cutout(Cutout),
    Trivial(TrivialAugmentWide),
}

impl Op {
    fn apply<P: SamplePixel>(&self, image: Image<P>, rng: &mut StdRng) -> Result<Image<P>> {
        match self {
            Op::Identity => Ok(image),
            Op::PadCrop { padding, mode } => {
                let (w, h) = image.dimensions();
                RandomCrop::new(w, h).with_padding(*padding).with_padding_mode(*mode).apply(image, rng)
            }
            Op::Crop(t) => t.apply(image, rng),
            Op::CenterCrop(t) => t.apply(image, rng),
            Op::Resize(t) => t.apply(image, rng),
            Op::ResizeShorter(t) => t.apply(image, rng),
            Op::ResizedCrop(t) => t.apply(image, rng),
            Op::HFlip(t) => t.apply(image, rng),
            Op::VFlip(t) => t.apply(image, rng),
            Op::Rotate(t) => t.apply(image, rng),
            Op::Affine(t) => t.apply(image, rng),
            Op::Jitter(t) => t.apply(image, rng),
            Op::Gray(t) => t.apply(image, rng),
            Op::Blur(t) => t.apply(image, rng),
            Op::Noise(t) => t.apply(image, rng),
            Op::SaltPepper(t) => t.apply(image, rng),
            Op::Erase(t) => t.apply(image, rng),
            Op::Cutout(t) => t.apply(image, rng),
            Op::Trivial(t) => t.apply(image, rng),
        }
    }
}

/// One op, applied with probability `p`.
#[derive(Debug, Clone, PartialEq)]
struct Gated {
    op: Op,
    p: Option<f64>,
}

/// A parsed pipeline: steps in order, each one op (or a uniform choice of several), possibly
/// gated by a probability. Works on any image type the transforms do.
///
/// # Vocabulary
///
/// Steps are separated by `,` and run in order. A step is `name[:arg[:arg...]]`; `step@P`
/// applies it with probability `P`; `a|b|c` applies one of the alternatives, chosen uniformly.
/// Sizes are `WxH` or `S` (square). Values on `u8` images are in grey levels where noted
/// "in units of white" (0.1 = 25.5 levels).
///
/// | op | meaning (torchvision equivalent) |
/// |---|---|
/// | `none` | nothing (also the empty string) |
/// | `pad-crop:P[:MODE]` | pad `P` pixels (`zero`, `edge`, `reflect`, `symmetric`; default zero), random crop back to the input size (`RandomCrop(size, P)`) |
/// | `crop:SIZE` | random crop, no padding |
/// | `center-crop:SIZE` | centre crop (`CenterCrop`) |
/// | `resize:SIZE[:INTERP]` | resize, `nearest`/`bilinear`/`bicubic` (default bilinear, antialiased) |
/// | `resized-crop:SIZE[:SMIN[:SMAX]]` | random resized crop, area scale range default 0.08..1 |
/// | `hflip[:P]`, `vflip[:P]` | flip with probability `P` (default 0.5) |
/// | `rotate:DEG` | rotation uniform in ±`DEG` (`RandomRotation`) |
/// | `affine:DEG[:T[:S[:SHEAR]]]` | rotation ±`DEG`, translation up to fraction `T`, scale `1±S`, shear ±`SHEAR` degrees (`RandomAffine`) |
/// | `jitter:B[:C[:S[:H]]]` | colour jitter: brightness, contrast, saturation, hue (`ColorJitter`) |
/// | `gray[:P]` | grayscale with probability `P` (default 1) |
/// | `blur:K[:SMIN[:SMAX]]` | Gaussian blur, odd kernel `K`, sigma range default 0.1..2 |
/// | `noise:STD` | additive Gaussian noise, `STD` in units of white |
/// | `salt-pepper:A` | a fraction `A` of the pixels set to black or white |
/// | `erase[:P]` | random erasing with probability `P` (default 0.5) |
/// | `cutout:SIZE` | zero a `SIZE x SIZE` square at a random centre |
/// | `trivial` | TrivialAugmentWide: one random op at a random strength |
///
/// Normalisation is not an op: it changes the pixel type, so it is part of
/// [`ToTensor`](crate::ToTensor).
#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline {
    steps: Vec<Vec<Gated>>,
    text: String,
}

impl Pipeline {
    /// Parses the vocabulary above; the error names the first bad token.
    pub fn parse(text: &str) -> Result<Self> {
        let mut steps = Vec::new();
        for token in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let mut alternatives = Vec::new();
            for alternative in token.split('|').map(str::trim) {
                let gated = parse_gated(alternative)
                    .map_err(|reason| Error::BadOp { token: alternative.to_string(), reason })?;
                alternatives.push(gated);
            }
            if alternatives.iter().all(|g| g.op == Op::Identity) {
                continue;
            }
            steps.push(alternatives);
        }
        Ok(Self { steps, text: text.trim().to_string() })
    }

    /// The text the pipeline was parsed from.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether the pipeline does nothing (`""` or `none`).
    pub fn is_identity(&self) -> bool {
        self.steps.is_empty()
    }
}

impl<P: SamplePixel> Transform<Image<P>> for Pipeline {
    fn apply(&self, mut image: Image<P>, rng: &mut StdRng) -> Result<Image<P>> {
        for step in &self.steps {
            let gated = if step.len() == 1 { &step[0] } else { &step[rng.random_range(0..step.len())] };
            if let Some(p) = gated.p {
                if rng.random::<f64>() >= p {
                    continue;
                }
            }
            image = gated.op.apply(image, rng)?;
        }
        Ok(image)
    }
}

fn parse_gated(text: &str) -> std::result::Result<Gated, String> {
    let (body, p) = match text.split_once('@') {
        Some((body, p)) => {
            let p: f64 = number(p, "probability after `@`")?;
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("probability {p} is not in [0, 1]"));
            }
            (body, Some(p))
        }
        None => (text, None),
    };
    Ok(Gated { op: parse_op(body)?, p })
}

fn number<T: std::str::FromStr>(text: &str, what: &str) -> std::result::Result<T, String> {
    text.trim().parse().map_err(|_| format!("`{text}` is not a valid {what}"))
}

fn size(text: &str) -> std::result::Result<(u32, u32), String> {
    match text.split_once('x') {
        Some((w, h)) => Ok((number(w, "width")?, number(h, "height")?)),
        None => {
            let s = number(text, "size (S or WxH)")?;
            Ok((s, s))
        }
    }
}

/// `nearest`, `bilinear` (the default) or `bicubic`.
fn interpolation(text: Option<&str>) -> std::result::Result<Interpolation, String> {
    match text.map(str::trim) {
        None | Some("bilinear") => Ok(Interpolation::Bilinear),
        Some("nearest") => Ok(Interpolation::Nearest),
        Some("bicubic") => Ok(Interpolation::Bicubic),
        Some(other) => Err(format!("unknown interpolation `{other}` (nearest, bilinear, bicubic)")),
    }
}

fn parse_op(text: &str) -> std::result::Result<Op, String> {
    let mut parts = text.split(':');
    let name = parts.next().unwrap_or_default().trim();
    let args: Vec<&str> = parts.collect();
    let arity = |min: usize, max: usize, usage: &str| {
        if args.len() < min || args.len() > max {
            Err(format!("expected `{usage}`"))
        } else {
            Ok(())
        }
    };
    let f = |i: usize, default: f64, what: &str| -> std::result::Result<f64, String> {
        args.get(i).map_or(Ok(default), |a| number(a, what))
    };
    let op = match name {
        "none" => {
            arity(0, 0, "none")?;
            Op::Identity
        }
        "pad-crop" => {
            arity(1, 2, "pad-crop:P[:zero|edge|reflect|symmetric]")?;
            let mode = match args.get(1).map(|m| m.trim()) {
                None | Some("zero") => PaddingMode::Zero,
                Some("edge") => PaddingMode::Edge,
                Some("reflect") => PaddingMode::Reflect,
                Some("symmetric") => PaddingMode::Symmetric,
                Some(other) => return Err(format!("unknown padding mode `{other}` (zero, edge, reflect, symmetric)")),
            };
            Op::PadCrop { padding: number(args[0], "padding")?, mode }
        }
        "crop" => {
            arity(1, 1, "crop:SIZE")?;
            let (w, h) = size(args[0])?;
            Op::Crop(RandomCrop::new(w, h))
        }
        "center-crop" => {
            arity(1, 1, "center-crop:SIZE")?;
            let (w, h) = size(args[0])?;
            Op::CenterCrop(CenterCrop::new(w, h).map_err(|e| e.to_string())?)
        }
        "resize" => {
            arity(1, 2, "resize:SIZE[:nearest|bilinear|bicubic]")?;
            let (w, h) = size(args[0])?;
            let interpolation = interpolation(args.get(1).copied())?;
            Op::Resize(Resize::new(w, h).map_err(|e| e.to_string())?.with_interpolation(interpolation))
        }
        "resize-short" => {
            arity(1, 2, "resize-short:SIDE[:nearest|bilinear|bicubic]")?;
            let side = number(args[0], "side")?;
            let interpolation = interpolation(args.get(1).copied())?;
            Op::ResizeShorter(ResizeShorter::new(side).map_err(|e| e.to_string())?.with_interpolation(interpolation))
        }
        "resized-crop" => {
            arity(1, 3, "resized-crop:SIZE[:SMIN[:SMAX]]")?;
            let (w, h) = size(args[0])?;
            let (low, high) = (f(1, 0.08, "scale")?, f(2, 1.0, "scale")?);
            let t = RandomResizedCrop::new(w, h).and_then(|t| t.with_scale(low, high)).map_err(|e| e.to_string())?;
            Op::ResizedCrop(t)
        }
        "hflip" => {
            arity(0, 1, "hflip[:P]")?;
            Op::HFlip(RandomHorizontalFlip::new(f(0, 0.5, "probability")?).map_err(|e| e.to_string())?)
        }
        "vflip" => {
            arity(0, 1, "vflip[:P]")?;
            Op::VFlip(RandomVerticalFlip::new(f(0, 0.5, "probability")?).map_err(|e| e.to_string())?)
        }
        "rotate" => {
            arity(1, 1, "rotate:DEG")?;
            Op::Rotate(RandomRotation::new(f(0, 0.0, "angle")?).map_err(|e| e.to_string())?)
        }
        "affine" => {
            arity(1, 4, "affine:DEG[:T[:S[:SHEAR]]]")?;
            let (deg, t, s, shear) =
                (f(0, 0.0, "angle")?, f(1, 0.0, "translation")?, f(2, 0.0, "scale")?, f(3, 0.0, "shear")?);
            let build = || -> Result<RandomAffine> {
                let mut a = RandomAffine::new(deg)?;
                if t > 0.0 {
                    a = a.with_translate(t, t)?;
                }
                if s > 0.0 {
                    a = a.with_scale(1.0 - s, 1.0 + s)?;
                }
                if shear > 0.0 {
                    a = a.with_shear(shear)?;
                }
                Ok(a)
            };
            Op::Affine(build().map_err(|e| e.to_string())?)
        }
        "jitter" => {
            arity(1, 4, "jitter:B[:C[:S[:H]]]")?;
            let (b, c, s, h) =
                (f(0, 0.0, "brightness")?, f(1, 0.0, "contrast")?, f(2, 0.0, "saturation")?, f(3, 0.0, "hue")?);
            Op::Jitter(ColorJitter::new(b, c, s, h).map_err(|e| e.to_string())?)
        }
        "gray" => {
            arity(0, 1, "gray[:P]")?;
            Op::Gray(RandomGrayscale::new(f(0, 1.0, "probability")?).map_err(|e| e.to_string())?)
        }
        "blur" => {
            arity(1, 3, "blur:K[:SMIN[:SMAX]]")?;
            let k = number(args[0], "kernel size")?;
            let low = f(1, 0.1, "sigma")?;
            let high = f(2, if args.len() > 1 { low } else { 2.0 }, "sigma")?;
            let t = GaussianBlur::new(k).and_then(|t| t.with_sigma(low, high)).map_err(|e| e.to_string())?;
            Op::Blur(t)
        }
        "noise" => {
            arity(1, 1, "noise:STD")?;
            Op::Noise(GaussianNoise::new(number(args[0], "standard deviation")?).map_err(|e| e.to_string())?)
        }
        "salt-pepper" => {
            arity(1, 1, "salt-pepper:A")?;
            Op::SaltPepper(SaltAndPepper::new(number(args[0], "amount")?).map_err(|e| e.to_string())?)
        }
        "erase" => {
            arity(0, 1, "erase[:P]")?;
            Op::Erase(RandomErasing::new(f(0, 0.5, "probability")?).map_err(|e| e.to_string())?)
        }
        "cutout" => {
            arity(1, 1, "cutout:SIZE")?;
            Op::Cutout(Cutout::new(number(args[0], "size")?).map_err(|e| e.to_string())?)
        }
        "trivial" => {
            arity(0, 0, "trivial")?;
            Op::Trivial(TrivialAugmentWide::new())
        }
        other => return Err(format!("unknown op `{other}` (known: {})", OP_NAMES.join(", "))),
    };
    Ok(op)
}
