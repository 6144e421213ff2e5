//! Wire codecs: pure encoders and parsers. (Being written.)
