//! One integration test binary; each module pins down one behaviour area.
