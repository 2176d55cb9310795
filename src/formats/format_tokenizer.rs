//! The tokenizer a text format trains with, built one way for every caller (training and
//! `adlab show`): a BPE is trained on the same corpus and cached in the same place, so what
//! `show` prints is what the model reads.

use super::config::bpe_cache_dir;
use super::config::{LanguageFormatConfig, RlhfTextFormatConfig};
use super::corpus::{bpe_corpus, StepText};
use super::language::LanguageFormat;
use crate::tasks::{LearningHistory, Split};
use crate::tokenizer::{bpe_cache_dir_for, TextTokenizer};
use anyhow::Result;
use std::path::Path;

/// Steps of the training split a BPE tokenizer is trained on (evenly subsampled).
const BPE_CORPUS_STEPS: usize = 200_000;

/// The tokenizer of a language format over a task's `histories` (both splits; BPE learns from
/// the train split only), cached beside the task data in `data_dir`.
pub fn language_tokenizer(
    format: &LanguageFormat,
    histories: &[LearningHistory],
    data_dir: &Path,
) -> Result<TextTokenizer> {
    let cfg: &LanguageFormatConfig = format.config();
    TextTokenizer::for_config(&cfg.tokenizer, &bpe_cache_dir(data_dir, cfg), || {
        Ok(bpe_corpus(format, histories, BPE_CORPUS_STEPS)?.into_iter())
    })
}

/// The tokenizer of the RLHF text format over rendered runs (`steps[i]` is run `i`, marked
/// `splits[i]`; BPE learns from train runs only), cached in `data_dir`.
pub fn rlhf_tokenizer(
    format_cfg: &RlhfTextFormatConfig,
    steps: &[Vec<(StepText, u32, f32)>],
    splits: &[Split],
    data_dir: &Path,
) -> Result<TextTokenizer> {
    let key = serde_json::to_value(format_cfg)?;
    TextTokenizer::for_config(
        &format_cfg.tokenizer,
        &bpe_cache_dir_for(data_dir, &format_cfg.name, &key),
        || {
            let corpus: Vec<String> = steps
                .iter()
                .zip(splits)
                .filter(|(_, s)| **s == Split::Train)
                .flat_map(|(h, _)| h.iter())
                .flat_map(|(st, _, _)| st.segments().map(str::to_string))
                .filter(|s| !s.is_empty())
                .collect();
            Ok(corpus.into_iter())
        },
    )
}
