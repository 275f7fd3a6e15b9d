//! One budget for every byte the gateway buffers at once (INPUT-08): request
//! bodies read before forwarding and responses read to be inspected. Each
//! stream's own limit bounds one request; this bounds them all together, so
//! many connections each sending a large body cannot exhaust memory. When
//! the budget is spent, new buffering is refused with 503 and an event.

use crate::rejection::Rejection;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The bytes buffered in flight across the process, and the cap.
#[derive(Debug)]
pub struct BufferBudget {
    used: AtomicUsize,
    max: usize,
}

impl BufferBudget {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            used: AtomicUsize::new(0),
            max,
        })
    }

    /// Bytes buffered right now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    /// An empty share of the budget, for one request.
    pub fn share(self: &Arc<Self>) -> BufferShare {
        BufferShare {
            budget: self.clone(),
            held: 0,
        }
    }
}

/// One request's share of the budget; given back when dropped.
#[derive(Debug)]
pub struct BufferShare {
    budget: Arc<BufferBudget>,
    held: usize,
}

impl BufferShare {
    /// Takes `n` more bytes, or refuses when the budget cannot hold them.
    pub fn grow(&mut self, n: usize) -> Result<(), Rejection> {
        let budget = &self.budget;
        let mut used = budget.used.load(Ordering::Acquire);
        loop {
            let next = used
                .checked_add(n)
                .filter(|next| *next <= budget.max)
                .ok_or(Rejection::Overloaded("in-flight buffering budget spent"))?;
            match budget
                .used
                .compare_exchange_weak(used, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    self.held += n;
                    return Ok(());
                }
                Err(now) => used = now,
            }
        }
    }
}

/// A share travelling with its response (in its extensions) until the
/// response body has been sent.
#[derive(Debug, Clone)]
pub struct Held(pub Arc<BufferShare>);

impl Drop for BufferShare {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.held, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_bounded_together_and_given_back() {
        let budget = BufferBudget::new(100);
        let mut a = budget.share();
        let mut b = budget.share();
        a.grow(60).unwrap();
        assert!(matches!(b.grow(50), Err(Rejection::Overloaded(_))));
        b.grow(40).unwrap();
        assert_eq!(budget.used(), 100);
        drop(a);
        assert_eq!(budget.used(), 40);
        b.grow(60).unwrap();
        drop(b);
        assert_eq!(budget.used(), 0);
    }
}
