package fs

import fusefs "github.com/hanwen/go-fuse/v2/fs"

// The FUSE operations Node implements, checked at compile time.
var (
	_ fusefs.NodeGetattrer     = (*Node)(nil)
	_ fusefs.NodeSetattrer     = (*Node)(nil)
	_ fusefs.NodeFsyncer       = (*Node)(nil)
	_ fusefs.NodeLookuper      = (*Node)(nil)
	_ fusefs.NodeReaddirer     = (*Node)(nil)
	_ fusefs.NodeCreater       = (*Node)(nil)
	_ fusefs.NodeMkdirer       = (*Node)(nil)
	_ fusefs.NodeMknoder       = (*Node)(nil)
	_ fusefs.NodeSymlinker     = (*Node)(nil)
	_ fusefs.NodeLinker        = (*Node)(nil)
	_ fusefs.NodeReadlinker    = (*Node)(nil)
	_ fusefs.NodeUnlinker      = (*Node)(nil)
	_ fusefs.NodeRmdirer       = (*Node)(nil)
	_ fusefs.NodeRenamer       = (*Node)(nil)
	_ fusefs.NodeOpener        = (*Node)(nil)
	_ fusefs.NodeStatfser      = (*Node)(nil)
	_ fusefs.NodeGetxattrer    = (*Node)(nil)
	_ fusefs.NodeSetxattrer    = (*Node)(nil)
	_ fusefs.NodeListxattrer   = (*Node)(nil)
	_ fusefs.NodeRemovexattrer = (*Node)(nil)
	_ fusefs.NodeAllocater     = (*Node)(nil)
)
