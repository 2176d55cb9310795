//! What a causal-LM checkpoint needs for Hugging Face to read its text: a `tokenizer.json`
//! for the byte tokenizer too (a byte-level BPE without merges, so byte `b` is token `b` and
//! end-of-text is 256, exactly as [`TextTokenizer::byte`]) and a `tokenizer_config.json` that
//! names the special tokens, so `AutoTokenizer.from_pretrained(checkpoint)` loads the
//! directory as it is.

use super::{TextTokenizer, END_OF_TEXT};
use anyhow::{anyhow, Result};
use std::str::FromStr;
use tokenizers::Tokenizer;

/// GPT-2's byte-to-character table: printable bytes map to themselves, the rest to
/// characters from U+0100 on, so every byte is a visible character a BPE vocabulary can hold
/// (the table the `tokenizers` ByteLevel pre-tokenizer applies).
fn byte_chars() -> [char; 256] {
    let printable = |b: u32| (0x21..=0x7e).contains(&b) || (0xa1..=0xac).contains(&b) || b >= 0xae;
    let mut out = ['\0'; 256];
    let mut next = 256u32;
    for b in 0..256u32 {
        let c = if printable(b) {
            b
        } else {
            next += 1;
            next - 1
        };
        out[b as usize] = char::from_u32(c).expect("below U+0200");
    }
    out
}

/// The byte tokenizer as a Hugging Face `tokenizer.json`, serialised by the `tokenizers` crate
/// (so the file is one the library itself reads).
pub fn byte_tokenizer_json() -> Result<String> {
    let vocab: serde_json::Map<String, serde_json::Value> = byte_chars()
        .iter()
        .enumerate()
        .map(|(b, c)| (c.to_string(), b.into()))
        .collect();
    let byte_level = serde_json::json!({
        "type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false
    });
    let json = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null,
        "added_tokens": [{
            "id": 256, "content": END_OF_TEXT, "single_word": false, "lstrip": false,
            "rstrip": false, "normalized": false, "special": true
        }],
        "normalizer": null, "pre_tokenizer": byte_level, "post_processor": null,
        "decoder": byte_level,
        "model": {
            "type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
            "ignore_merges": false, "vocab": vocab, "merges": []
        },
    });
    let tokenizer = Tokenizer::from_str(&json.to_string())
        .map_err(|e| anyhow!("building the byte tokenizer.json: {e}"))?;
    tokenizer
        .to_string(false)
        .map_err(|e| anyhow!("serialising the byte tokenizer: {e}"))
}

/// `tokenizer_config.json`: the end-of-text token serves as beginning, end and padding (as in
/// training), decoding keeps spaces as written, no `token_type_ids` are produced, and
/// `model_max_length` is the context.
pub fn tokenizer_config_json(
    tokenizer: &TextTokenizer,
    model_max_length: usize,
) -> Result<Vec<u8>> {
    let eot = tokenizer
        .token_text(tokenizer.end_of_text_id())
        .unwrap_or_else(|| END_OF_TEXT.to_string());
    let json = serde_json::json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": eot, "eos_token": eot, "pad_token": eot,
        "model_max_length": model_max_length,
        "clean_up_tokenization_spaces": false,
        // GPT-2 would add the embedding of token 0 for every `token_type_ids` it is given.
        "model_input_names": ["input_ids", "attention_mask"],
    });
    let mut text = serde_json::to_string_pretty(&json)?;
    text.push('\n');
    Ok(text.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXTS: [&str; 4] = [
        "(4,4) up 0\n###\n",
        "prompt: the old fisherman walked\ncompletion: smiled é ✓\nreward: -0.25\n",
        " \t\r\n",
        "",
    ];

    #[test]
    fn the_byte_table_is_gpt2s() {
        let t = byte_chars();
        assert_eq!((t[b'!' as usize], t[b' ' as usize]), ('!', 'Ġ'));
        assert_eq!((t[b'\n' as usize], t[0]), ('Ċ', 'Ā'));
        let distinct: std::collections::HashSet<char> = t.iter().copied().collect();
        assert_eq!(distinct.len(), 256);
    }

    /// The file, read by the `tokenizers` crate, encodes and decodes like the run's tokenizer.
    #[test]
    fn saved_tokenizers_load_in_the_tokenizers_crate_and_encode_like_the_runs() {
        let corpus = (0..300).flat_map(|i| {
            [
                format!("({},{})", i % 9, i % 7),
                " up".into(),
                " 0".into(),
                "\n###\n".into(),
            ]
        });
        let bpe = TextTokenizer::train_bpe(corpus, 300).unwrap();
        for tok in [TextTokenizer::byte(), bpe] {
            let json = String::from_utf8(tok.to_json().unwrap().unwrap()).unwrap();
            let hf = Tokenizer::from_str(&json).unwrap();
            for text in TEXTS {
                let ids = hf.encode(text, false).unwrap().get_ids().to_vec();
                assert_eq!(ids, tok.encode(text).unwrap(), "{text:?}");
                assert_eq!(hf.decode(&ids, true).unwrap(), text);
            }
            let eot = tok.end_of_text_id();
            assert_eq!(hf.token_to_id(END_OF_TEXT), Some(eot));
            assert!(hf.get_vocab_size(true) <= tok.vocab_size());
            let config: serde_json::Value =
                serde_json::from_slice(&tokenizer_config_json(&tok, 64).unwrap()).unwrap();
            assert_eq!(config["eos_token"], END_OF_TEXT);
            assert_eq!(config["model_max_length"], 64);
        }
        assert_eq!(TextTokenizer::byte().vocab_size(), 257);
    }
}
