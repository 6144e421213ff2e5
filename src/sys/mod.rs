//! System layer: the only place with `unsafe`. (Being written.)
#![allow(unsafe_code)]
