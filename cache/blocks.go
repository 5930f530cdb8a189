package cache

// Blocks is the on-disk block cache of file content read from the server.
type Blocks struct{}

// openBlocks opens the block cache in dir, limited to limit bytes.
func openBlocks(dir string, limit int64) (*Blocks, error) { return &Blocks{}, nil }

func (b *Blocks) close() error { return nil }
