//! File store (filled in by the file-store helper).
