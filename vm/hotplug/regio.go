package hotplug

// readImage copies the bytes of image at offset into data; bytes past the
// end of image read as zero.
func readImage(image []byte, offset uint64, data []byte) {
	for i := range data {
		data[i] = 0
		if off := offset + uint64(i); off < uint64(len(image)) {
			data[i] = image[off]
		}
	}
}

// setByte replaces byte i (0 = least significant) of the 32-bit v with b.
func setByte(v uint32, i uint64, b byte) uint32 {
	shift := 8 * i
	return v&^(0xff<<shift) | uint32(b)<<shift
}
