package cache

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/dgraph-io/ristretto/v2"
	"golang.org/x/sys/unix"
)

// openBlocks opens the block cache in dir, limited to limit bytes (0 picks
// the default: 4 GiB, but no more than half of the space the filesystem has
// free for the cache). Blocks left by an earlier mount are taken up again,
// newest first, as far as the limit allows; the rest, and anything a crash
// left half-written, is deleted.
func openBlocks(dir string, limit int64) (*Blocks, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("block cache: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("block cache: %w", err)
	}
	found, paths, err := scanBlocks(dir)
	if err != nil {
		return nil, fmt.Errorf("block cache %s: %w", dir, err)
	}
	if limit <= 0 {
		var used int64
		for _, f := range found {
			used += f.bf.cost
		}
		limit = defaultLimitFor(dir, used)
	}

	b := &Blocks{
		dir:      dir,
		limit:    limit,
		tokens:   make(chan struct{}, readaheadBuffers),
		writes:   make(chan *flight, writeQueue),
		paths:    map[pathHash]*pathBlocks{},
		inflight: map[blockID]*flight{},
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	// About ten counters per block the cache can hold, as ristretto advises,
	// within bounds that keep its memory small (3 bytes a counter).
	counters := min(max(10*limit/BlockSize, 1<<12), 1<<20)
	b.policy, err = ristretto.NewCache(&ristretto.Config[string, *blockFile]{
		NumCounters:        counters,
		MaxCost:            max(limit, 1),
		BufferItems:        64,
		IgnoreInternalCost: true,
		OnEvict:            b.onEvict,
		OnReject:           b.onEvict,
	})
	if err != nil {
		b.cancel()
		return nil, fmt.Errorf("block cache: %w", err)
	}

	// Newest first: what fits under the limit stays.
	sort.Slice(found, func(i, j int) bool { return found[i].mtime.After(found[j].mtime) })
	var kept int64
	for i, f := range found {
		if kept+f.bf.cost > limit {
			os.Remove(f.bf.name)
			continue
		}
		kept += f.bf.cost
		pb := b.paths[f.bf.id.ph]
		if pb == nil {
			pb = &pathBlocks{blocks: map[blockID]*blockFile{}}
			pb.path, pb.named = paths[f.bf.id.ph]
			b.paths[f.bf.id.ph] = pb
		}
		pb.blocks[f.bf.id] = f.bf
		b.used += f.bf.cost
		b.count++
		if !b.admit(f.bf) {
			b.forget(f.bf)
		}
		if i%1024 == 1023 {
			b.settle()
		}
	}
	b.settle()
	for range writers {
		go b.writer()
	}
	return b, nil
}

// found is a block file seen at start-up.
type found struct {
	bf    *blockFile
	mtime time.Time
}

// scanBlocks lists the block files under dir and the paths their
// directories belong to, deleting temporary files and anything it does not
// recognise (the directory belongs to the cache alone).
func scanBlocks(dir string) ([]found, map[pathHash]string, error) {
	var out []found
	paths := map[pathHash]string{}
	tops, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	for _, top := range tops {
		topDir := filepath.Join(dir, top.Name())
		if !top.IsDir() || len(top.Name()) != 2 {
			os.RemoveAll(topDir)
			continue
		}
		subs, err := os.ReadDir(topDir)
		if err != nil {
			return nil, nil, err
		}
		for _, sub := range subs {
			pdir := filepath.Join(topDir, sub.Name())
			var ph pathHash
			if !sub.IsDir() || !strings.HasPrefix(sub.Name(), top.Name()) ||
				len(sub.Name()) != 2*len(ph) || !decodeHex(ph[:], sub.Name()) {
				os.RemoveAll(pdir)
				continue
			}
			blocks, err := scanPathDir(pdir, ph)
			if err != nil {
				return nil, nil, err
			}
			if len(blocks) == 0 {
				os.RemoveAll(pdir)
				continue
			}
			if p, err := os.ReadFile(filepath.Join(pdir, "path")); err == nil && hashPath(string(p)) == ph {
				paths[ph] = string(p)
			}
			out = append(out, blocks...)
		}
		os.Remove(topDir) // if it is empty
	}
	return out, paths, nil
}

// scanPathDir lists the blocks in one path's directory.
func scanPathDir(pdir string, ph pathHash) ([]found, error) {
	ents, err := os.ReadDir(pdir)
	if err != nil {
		return nil, err
	}
	var out []found
	for _, e := range ents {
		name := filepath.Join(pdir, e.Name())
		if e.Name() == "path" {
			continue
		}
		vh, idx, crc, ok := parseBlockName(e.Name())
		info, err := e.Info()
		if !ok || err != nil || !info.Mode().IsRegular() || info.Size() == 0 || info.Size() > BlockSize {
			os.RemoveAll(name)
			continue
		}
		bf := &blockFile{id: blockID{ph: ph, vh: vh, idx: idx}, name: name,
			size: info.Size(), cost: blockCost(info.Size()), crc: crc}
		out = append(out, found{bf: bf, mtime: info.ModTime()})
	}
	return out, nil
}

func decodeHex(dst []byte, s string) bool {
	n, err := hex.Decode(dst, []byte(s))
	return err == nil && n == len(dst)
}

// defaultLimitFor is the default size limit of a cache in dir that holds
// used bytes already: defaultLimit, or half of the space the cache could
// have (free space plus its own), if that is less.
func defaultLimitFor(dir string, used int64) int64 {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return defaultLimit
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	return max(min(defaultLimit, (free+used)/2), 1)
}
