//! The items a suite is made of, whatever file they came from.

/// A question answered by picking one of several choices.
#[derive(Clone, Debug, PartialEq)]
pub struct ChoiceItem {
    pub subject: String,
    pub question: String,
    pub choices: Vec<String>,
    /// Index of the right choice.
    pub answer: usize,
}

/// A chat prompt whose generated answer is compared with ideal answers.
#[derive(Clone, Debug, PartialEq)]
pub struct GenItem {
    pub subject: String,
    /// `(role, content)` messages.
    pub messages: Vec<(String, String)>,
    pub ideal: Vec<String>,
}

/// A suite's items.
#[derive(Clone, Debug, PartialEq)]
pub enum Items {
    Choice(Vec<ChoiceItem>),
    Gen(Vec<GenItem>),
}

impl Items {
    pub fn len(&self) -> usize {
        match self {
            Items::Choice(v) => v.len(),
            Items::Gen(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// At most `n` items spread evenly over the set (every subject keeps its share).
    pub fn limit(self, n: Option<usize>) -> Items {
        fn pick<T>(v: Vec<T>, n: usize) -> Vec<T> {
            if n >= v.len() {
                return v;
            }
            let len = v.len();
            let keep: Vec<usize> = (0..n).map(|i| i * len / n).collect();
            v.into_iter().enumerate().filter(|(i, _)| keep.binary_search(i).is_ok()).map(|(_, x)| x).collect()
        }
        match (self, n) {
            (s, None) => s,
            (Items::Choice(v), Some(n)) => Items::Choice(pick(v, n)),
            (Items::Gen(v), Some(n)) => Items::Gen(pick(v, n)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_spreads_over_the_whole_set() {
        let v: Vec<ChoiceItem> = (0..100)
            .map(|i| ChoiceItem { subject: format!("s{}", i / 25), question: format!("{i}"), choices: vec!["a".into()], answer: 0 })
            .collect();
        let Items::Choice(l) = Items::Choice(v).limit(Some(8)) else { unreachable!() };
        assert_eq!(l.len(), 8);
        let mut subjects: Vec<&str> = l.iter().map(|x| x.subject.as_str()).collect();
        subjects.dedup();
        assert_eq!(subjects, ["s0", "s1", "s2", "s3"]);
    }
}
