//! Wire codecs: pure encoders and parsers. (Being written.)

pub mod http;
pub mod icmp;
pub mod json;
pub mod routeros;
