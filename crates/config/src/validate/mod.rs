//! The validator's sections: each adds the model of one part of the
//! config and reports every problem in it with its field path.

mod apis;
mod identity;
mod state;
mod transport;
