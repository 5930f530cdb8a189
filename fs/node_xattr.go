package fs

import (
	"context"
	"syscall"
)

// Extended attributes: none are stored yet. Reads answer "no such
// attribute", writes "not supported", so that cp -a, rsync -X and file
// managers get a clean answer instead of EIO.

// Getxattr implements fusefs.NodeGetxattrer.
func (n *Node) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	return 0, syscall.ENODATA
}

// Listxattr implements fusefs.NodeListxattrer.
func (n *Node) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	return 0, 0
}

// Setxattr implements fusefs.NodeSetxattrer.
func (n *Node) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	return syscall.ENOTSUP
}

// Removexattr implements fusefs.NodeRemovexattrer.
func (n *Node) Removexattr(ctx context.Context, attr string) syscall.Errno {
	return syscall.ENODATA
}
