package virtio

import "math/bits"

// blockMap is which blocks of a virtio-mem region are plugged: one bit per
// block.
type blockMap struct {
	words []uint64
	n     uint64
}

func newBlockMap(n uint64) blockMap {
	return blockMap{words: make([]uint64, (n+63)/64), n: n}
}

// len is the number of blocks.
func (b blockMap) len() uint64 { return b.n }

// count is how many of the n blocks from first are plugged. The caller
// checked that they lie in the map.
func (b blockMap) count(first, n uint64) uint64 {
	var c uint64
	for i := first; i < first+n; {
		w, bit := i/64, i%64
		take := min(64-bit, first+n-i)
		mask := ^uint64(0) >> (64 - take) << bit
		c += uint64(bits.OnesCount64(b.words[w] & mask))
		i += take
	}
	return c
}

// set marks the n blocks from first plugged or unplugged.
func (b blockMap) set(first, n uint64, plugged bool) {
	for i := first; i < first+n; {
		w, bit := i/64, i%64
		take := min(64-bit, first+n-i)
		mask := ^uint64(0) >> (64 - take) << bit
		if plugged {
			b.words[w] |= mask
		} else {
			b.words[w] &^= mask
		}
		i += take
	}
}
