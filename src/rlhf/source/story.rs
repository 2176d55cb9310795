//! A seeded grammar of short story openings. A prompt sets a neutral scene
//! (`one morning the old fisherman walked to the`); its continuation names a place and adds one
//! or two clauses whose sentiment words come from the lexicon
//! (`harbor and felt happy then smiled`). Pretraining on these stories gives the policy
//! grammatical, sentiment-balanced continuations, which PPO then pushes towards the reward.
//! Everything is single-spaced lower-case words without punctuation, so the word-level
//! tokenizer round-trips it exactly.

use super::lexicon::{Lexicon, Role};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

const TIMES: [&str; 8] = [
    "one morning",
    "one evening",
    "one night",
    "one day",
    "that winter",
    "that summer",
    "that spring",
    "that autumn",
];
const DESCRIPTORS: [&str; 12] = [
    "old", "young", "tall", "short", "little", "new", "local", "famous", "retired", "clever",
    "bearded", "quiet",
];
const PERSONS: [&str; 20] = [
    "fisherman",
    "baker",
    "girl",
    "boy",
    "teacher",
    "farmer",
    "sailor",
    "knight",
    "doctor",
    "painter",
    "miller",
    "widow",
    "soldier",
    "merchant",
    "student",
    "poet",
    "hunter",
    "nurse",
    "king",
    "queen",
];
const MOTIONS: [&str; 8] = [
    "walked", "ran", "drove", "rode", "hurried", "wandered", "climbed", "sailed",
];
const PREPOSITIONS: [&str; 4] = ["to", "into", "toward", "through"];
const PLACES: [&str; 20] = [
    "harbor", "market", "forest", "village", "castle", "river", "school", "garden", "station",
    "church", "bridge", "mountain", "beach", "library", "farm", "city", "tower", "field", "bakery",
    "lake",
];
const THINGS: [&str; 10] = [
    "sky", "room", "water", "bread", "music", "street", "house", "air", "road", "crowd",
];

/// Longest prompt in tokens: end-of-text (as beginning of sequence) + 8 words.
pub const PROMPT_TOKENS: usize = 9;
/// Longest continuation in words (`place and the thing was adj and felt adj`).
pub const MAX_CONTINUATION_WORDS: usize = 9;

fn pick<'a>(rng: &mut ChaCha8Rng, words: &[&'a str]) -> &'a str {
    words[rng.random_range(0..words.len())]
}

/// The story grammar over the embedded lexicon.
#[derive(Debug, Clone)]
pub struct Grammar {
    adjectives: Vec<&'static str>,
    verbs: Vec<&'static str>,
}

impl Default for Grammar {
    fn default() -> Self {
        Self::new()
    }
}

impl Grammar {
    pub fn new() -> Self {
        let lex = Lexicon::get();
        Grammar {
            adjectives: lex.words(Role::Adjective),
            verbs: lex.words(Role::Verb),
        }
    }

    /// A story opening, e.g. `one night the young baker hurried to the`.
    pub fn prompt(&self, rng: &mut ChaCha8Rng) -> String {
        let mut words = Vec::with_capacity(8);
        if rng.random_bool(0.5) {
            words.push(pick(rng, &TIMES));
        }
        words.extend([
            "the",
            pick(rng, &DESCRIPTORS),
            pick(rng, &PERSONS),
            pick(rng, &MOTIONS),
            pick(rng, &PREPOSITIONS),
            "the",
        ]);
        words.join(" ")
    }

    /// A continuation of any prompt, its sentiment words uniform over the lexicon's.
    pub fn continuation(&self, rng: &mut ChaCha8Rng) -> String {
        let mut words = vec![pick(rng, &PLACES)];
        match rng.random_range(0..4) {
            0 => words.extend(["and", "felt", pick(rng, &self.adjectives)]),
            1 => words.extend(["and", pick(rng, &self.verbs)]),
            2 => words.extend(["and", "the", pick(rng, &THINGS), "was"]),
            _ => words.extend(["where", "everyone", "was"]),
        }
        if matches!(words.last(), Some(&"was")) {
            words.push(pick(rng, &self.adjectives));
        }
        match rng.random_range(0..3) {
            0 => words.extend(["then", pick(rng, &self.verbs)]),
            1 => words.extend(["and", "felt", pick(rng, &self.adjectives)]),
            _ => {}
        }
        words.join(" ")
    }

    /// Every word the grammar can produce, sorted: the policy's vocabulary.
    pub fn vocabulary(&self) -> Vec<String> {
        let fixed = ["the", "and", "felt", "was", "where", "everyone", "then"];
        let mut words: Vec<String> = TIMES
            .iter()
            .flat_map(|t| t.split(' '))
            .chain(fixed)
            .chain(DESCRIPTORS)
            .chain(PERSONS)
            .chain(MOTIONS)
            .chain(PREPOSITIONS)
            .chain(PLACES)
            .chain(THINGS)
            .chain(self.adjectives.iter().copied())
            .chain(self.verbs.iter().copied())
            .map(str::to_string)
            .collect();
        words.sort();
        words.dedup();
        words
    }
}

/// `n` prompts from the stream `(seed, label)`; prompt `i` depends only on `(seed, label, i)`,
/// so a longer list extends a shorter one. PPO uses label `"rlhf-prompts"`; an evaluation can
/// draw unseen prompts with another label or seed.
pub fn prompts(seed: u64, label: &str, n: usize) -> Vec<String> {
    let grammar = Grammar::new();
    (0..n)
        .map(|i| grammar.prompt(&mut crate::seed::rng(seed, label, &[i as u64])))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stories_are_seeded_in_vocabulary_and_within_bounds() {
        let g = Grammar::new();
        assert_eq!(prompts(1, "p", 5), prompts(1, "p", 5));
        assert_eq!(prompts(1, "p", 3), prompts(1, "p", 5)[..3]);
        assert_ne!(prompts(1, "p", 5), prompts(2, "p", 5));
        let vocab = g.vocabulary();
        let mut rng = crate::seed::rng(0, "t", &[]);
        let (mut max_p, mut max_c, mut scored) = (0, 0, 0);
        for _ in 0..2000 {
            let (p, c) = (g.prompt(&mut rng), g.continuation(&mut rng));
            max_p = max_p.max(p.split(' ').count());
            max_c = max_c.max(c.split(' ').count());
            let words: Vec<&str> = p.split(' ').chain(c.split(' ')).collect();
            assert!(words
                .iter()
                .all(|w| vocab.binary_search(&w.to_string()).is_ok()));
            if c.split(' ').any(|w| Lexicon::get().valence(w).is_some()) {
                scored += 1;
            }
        }
        assert_eq!(max_p + 1, PROMPT_TOKENS);
        assert_eq!(max_c, MAX_CONTINUATION_WORDS);
        assert!(
            scored > 1900,
            "continuations carry sentiment words: {scored}"
        );
        assert!(vocab.len() > 300, "{}", vocab.len());
    }
}
