//! adlab's own sentiment lexicon (`assets/sentiment_lexicon.tsv`, embedded at build time so
//! nothing is downloaded): `word<TAB>valence<TAB>role`. The valences score completions
//! ([`super::reward`]); the roles say where the story grammar ([`super::story`]) may place each
//! word, so every lexicon word can appear in a completion and vice versa.

use std::collections::HashMap;
use std::sync::OnceLock;

const LEXICON_TSV: &str = include_str!("../../../assets/sentiment_lexicon.tsv");

/// Where a lexicon word fits in a continuation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// After `felt` / `was` (`and felt happy`).
    Adjective,
    /// A clause on its own (`and smiled`).
    Verb,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub word: &'static str,
    pub valence: f32,
    pub role: Role,
}

/// The parsed lexicon, in file order, with a word index.
#[derive(Debug)]
pub struct Lexicon {
    pub entries: Vec<Entry>,
    index: HashMap<&'static str, f32>,
}

impl Lexicon {
    /// The embedded lexicon (parsed once). A malformed line is a build defect, caught by the
    /// unit test below, hence the panic.
    pub fn get() -> &'static Lexicon {
        static LEXICON: OnceLock<Lexicon> = OnceLock::new();
        LEXICON.get_or_init(|| Lexicon::parse(LEXICON_TSV).expect("assets/sentiment_lexicon.tsv"))
    }

    fn parse(text: &'static str) -> Result<Lexicon, String> {
        let mut entries = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let bad = || format!("line {}: {line:?}", i + 1);
            let mut cols = line.split('\t');
            let (Some(word), Some(valence), Some(role), None) =
                (cols.next(), cols.next(), cols.next(), cols.next())
            else {
                return Err(bad());
            };
            let valence: f32 = valence.parse().map_err(|_| bad())?;
            let role = match role {
                "adj" => Role::Adjective,
                "verb" => Role::Verb,
                _ => return Err(bad()),
            };
            if !(-1.0..=1.0).contains(&valence) || word.is_empty() {
                return Err(bad());
            }
            entries.push(Entry {
                word,
                valence,
                role,
            });
        }
        let index = entries.iter().map(|e| (e.word, e.valence)).collect();
        Ok(Lexicon { entries, index })
    }

    pub fn valence(&self, word: &str) -> Option<f32> {
        self.index.get(word).copied()
    }

    /// The words of one role, in file order.
    pub fn words(&self, role: Role) -> Vec<&'static str> {
        self.entries
            .iter()
            .filter(|e| e.role == role)
            .map(|e| e.word)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexicon_parses_has_no_duplicates_and_is_balanced() {
        let lex = Lexicon::get();
        assert!(lex.entries.len() >= 200, "{}", lex.entries.len());
        assert_eq!(lex.index.len(), lex.entries.len(), "duplicate words");
        let pos = lex.entries.iter().filter(|e| e.valence > 0.0).count();
        let neg = lex.entries.iter().filter(|e| e.valence < 0.0).count();
        assert!(pos.abs_diff(neg) <= 5, "{pos} positive vs {neg} negative");
        assert_eq!(lex.valence("happy"), Some(0.8));
        assert!(lex.valence("fisherman").is_none());
        assert!(Lexicon::parse("a\tx\tadj\n").is_err());
        assert!(Lexicon::parse("a\t2\tadj\n").is_err());
    }
}
