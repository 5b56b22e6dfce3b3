package acpi

import "strings"

// amlCase is one AML construct (or a few that need each other), with the
// ASL that iasl compiles to the same bytes and those bytes as a golden.
type amlCase struct {
	name string
	aml  []Aml
	asl  string // the body of a DefinitionBlock
	want string // golden bytes in hex, spaces ignored
}

// amlCases are checked twice: against their golden bytes (worked out from
// the ACPI 6.5 spec, chapter 20, and confirmed with iasl) and against iasl
// compiling their ASL with namepath optimization off (-on), which is how
// this package writes names: as given.
var amlCases = []amlCase{
	{
		name: "IntegersTakeTheirShortestEncoding",
		aml: []Aml{
			Name("I0", Int(0)), Name("I1", Int(1)), Name("I2", Int(2)),
			Name("IFF", Int(0xff)), Name("I100", Int(0x100)),
			Name("IW", Int(0xffff)), Name("ID", Int(0x10000)),
			Name("IDD", Int(0xffffffff)), Name("IQ", Int(0x100000000)),
			Name("IQQ", Int(0x123456789abcdef0)), Name("IONE", Int(1<<64-1)),
			Name("NZR", Zero), Name("NON", One), Name("NAL", Ones),
		},
		asl: `Name (I0, 0) Name (I1, 1) Name (I2, 2)
			Name (IFF, 0xFF) Name (I100, 0x100)
			Name (IW, 0xFFFF) Name (ID, 0x10000)
			Name (IDD, 0xFFFFFFFF) Name (IQ, 0x100000000)
			Name (IQQ, 0x123456789ABCDEF0) Name (IONE, 0xFFFFFFFFFFFFFFFF)
			Name (NZR, Zero) Name (NON, One) Name (NAL, Ones)`,
		want: `0849305f5f00
			0849315f5f01
			0849325f5f0a02
			084946465f0aff
			08493130300b0001
			0849575f5f0bffff
			0849445f5f0c00000100
			084944445f0cffffffff
			0849515f5f0e0000000001000000
			084951515f0ef0debc9a78563412
			08494f4e45ff
			084e5a525f00
			084e4f4e5f01
			084e414c5fff`,
	},
	{
		name: "StringsBuffersAndPackages",
		aml: []Aml{
			Name("STR", String("hello")),
			Name("EMP", String("")),
			Name("BUF", Buffer{1, 2, 3}),
			Name("BUF1", Buffer{0xaa}),
			Name("PKG", Package{Int(1), String("a"), Package{Int(0x20)}}),
		},
		asl: `Name (STR, "hello") Name (EMP, "")
			Name (BUF, Buffer () {1, 2, 3}) Name (BUF1, Buffer () {0xAA})
			Name (PKG, Package () {1, "a", Package () {0x20}})`,
		want: `085354525f0d68656c6c6f00
			08454d505f0d00
			084255465f11060a03010203
			0842554631110301aa
			08504b475f120b03010d61001204010a20`,
	},
	{
		name: "NamePaths",
		aml: []Aml{
			Scope(`\_SB`, Device("DEV0", Name("_ADR", Zero), Name("NAM0", Zero))),
			Name(`\_SB.DEV0.NAM1`, Int(0x10000)),
			Name(`\_SB.NAM2`, Zero),
			Scope(`\_SB.DEV0`, Name("^NAM3", One)),
			Scope(`\`, Name("NAM4", One)),
			Method("FOO", 0, false, Return(Path(`\_SB.DEV0.NAM1`))),
		},
		asl: `Scope (\_SB) { Device (DEV0) { Name (_ADR, 0) Name (NAM0, 0) } }
			Name (\_SB.DEV0.NAM1, 0x10000)
			Name (\_SB.NAM2, 0x0)
			Scope (\_SB.DEV0) { Name (^NAM3, 1) }
			Scope (\) { Name (NAM4, 1) }
			Method (FOO, 0) { Return (\_SB.DEV0.NAM1) }`,
		want: `10195c5f53425f5b821144455630085f41445200084e414d3000
			085c2f035f53425f444556304e414d310c00000100
			085c2e5f53425f4e414d3200
			10125c2e5f53425f44455630085e4e414d3301
			10095c00084e414d3401
			1416464f4f5f00a45c2f035f53425f444556304e414d31`,
	},
	{
		name: "MethodsAndArithmetic",
		aml: []Aml{
			Method("CALC", 2, true,
				Store(Arg(0), Local(0)),
				Add(Local(0), Arg(1), Local(1)),
				Subtract(Local(1), One, Local(1)),
				ShiftLeft(Local(1), Int(32), Local(2)),
				ShiftRight(Local(2), Int(4), Local(2)),
				And(Local(2), Int(0xff), Local(3)),
				Or(Local(3), Int(0x100), Local(3)),
				Increment(Local(3)),
				Decrement(Local(3)),
				Return(Add(Local(3), SizeOf(Arg(1)), nil)),
			),
			Method("USE", 0, false,
				Call("CALC", Int(3), Int(4)),
				Store(Int(2), Local(7)),
				Return(Call("CALC", One, Local(7))),
			),
		},
		asl: `Method (CALC, 2, Serialized) {
				Store (Arg0, Local0)
				Add (Local0, Arg1, Local1)
				Subtract (Local1, One, Local1)
				ShiftLeft (Local1, 32, Local2)
				ShiftRight (Local2, 4, Local2)
				And (Local2, 0xFF, Local3)
				Or (Local3, 0x100, Local3)
				Increment (Local3)
				Decrement (Local3)
				Return (Add (Local3, SizeOf (Arg1)))
			}
			Method (USE, 0, NotSerialized) {
				CALC (3, 4)
				Store (2, Local7)
				Return (CALC (One, Local7))
			}`,
		want: `143043414c430a706860726069617461016179610a20627a620a04627b620aff
			637d630b00016375637663a47263876900
			14195553455f0043414c430a030a04700a0267a443414c430167`,
	},
	{
		name: "ControlFlowAndNotify",
		aml: []Aml{
			Device("DEV1", Name("_HID", String("ACPI0007"))),
			Method("LOOP", 1, false,
				Store(Zero, Local(0)),
				While(LLess(Local(0), Arg(0)),
					If(LEqual(Local(0), Int(5)),
						Notify(Path("DEV1"), Int(0x80)),
						Break,
					),
					Else(
						If(LNot(LGreater(Local(0), Int(9))), Notify(Path("DEV1"), One)),
					),
					If(LOr(LAnd(Arg(0), Local(0)), One), Sleep(Int(10))),
					Increment(Local(0)),
				),
				Return(Ones),
			),
		},
		asl: `Device (DEV1) { Name (_HID, "ACPI0007") }
			Method (LOOP, 1) {
				Store (Zero, Local0)
				While (LLess (Local0, Arg0)) {
					If (LEqual (Local0, 5)) {
						Notify (DEV1, 0x80)
						Break
					} Else {
						If (LNot (LGreater (Local0, 9))) { Notify (DEV1, One) }
					}
					If (LOr (LAnd (Arg0, Local0), One)) { Sleep (10) }
					Increment (Local0)
				}
				Return (Ones)
			}`,
		want: `5b821444455631085f4849440d414350493030303700
			143a4c4f4f5001700060a22e956068a00d93600a0586444556310a80a5a10ea0
			0c9294600a09864445563101a00a91906860015b220a0a7560a4ff`,
	},
	{
		name: "MutexAndRegions",
		aml: []Aml{
			Mutex("MTX", 0),
			Mutex("MTX1", 15),
			OperationRegion("MREG", SystemMemory, 0xfed00000, 0x28),
			OperationRegion("IREG", SystemIO, 0x600, 1),
			Field("MREG", DWordAcc, NoLock, WriteAsZeros,
				FieldUnit{"SEL", 32},
				FieldOffset(8),
				FieldUnit{"BASL", 32}, FieldUnit{"BASH", 32}),
			Field("MREG", ByteAcc, Lock, Preserve,
				FieldOffset(0x18),
				FieldUnit{"EN", 1}, FieldUnit{"INS", 1}, FieldUnit{"RMV", 1},
				FieldOffset(0x19), FieldUnit{"WIDE", 64}),
			Field("IREG", AnyAcc, NoLock, WriteAsOnes, FieldUnit{"PORT", 8}),
			Field("MREG", QWordAcc, NoLock, Preserve, FieldOffset(0x10), FieldUnit{"LEN", 64}),
			Method("LCK0", 0, false,
				Acquire("MTX", WaitForever),
				Store(One, Path("SEL")),
				Release("MTX"),
				Return(Acquire("MTX1", 100)),
			),
		},
		asl: `Mutex (MTX, 0)
			Mutex (MTX1, 15)
			OperationRegion (MREG, SystemMemory, 0xFED00000, 0x28)
			OperationRegion (IREG, SystemIO, 0x600, 1)
			Field (MREG, DWordAcc, NoLock, WriteAsZeros) {
				SEL, 32,
				Offset (8),
				BASL, 32, BASH, 32 }
			Field (MREG, ByteAcc, Lock, Preserve) {
				Offset (0x18),
				EN, 1, INS, 1, RMV, 1,
				Offset (0x19), WIDE, 64 }
			Field (IREG, AnyAcc, NoLock, WriteAsOnes) { PORT, 8 }
			Field (MREG, QWordAcc, NoLock, Preserve) { Offset (0x10), LEN, 64 }
			Method (LCK0, 0) {
				Acquire (MTX, 0xFFFF)
				Store (One, SEL)
				Release (MTX)
				Return (Acquire (MTX1, 100))
			}`,
		want: `5b014d54585f00
			5b014d5458310f
			5b804d524547000c0000d0fe0a28
			5b8049524547010b000601
			5b81174d5245474353454c5f2000204241534c204241534820
			5b81204d5245471100400c454e5f5f01494e535f01524d565f01000557494445
			4004
			5b810b4952454720504f525408
			5b810f4d524547040040084c454e5f4004
			14234c434b30005b234d54585fffff700153454c5f5b274d54585fa45b234d54
			58316400`,
	},
	{
		name: "CreateFieldsOnABuffer",
		aml: []Aml{
			Method("CRS", 0, true,
				Name("BUF", Buffer{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}),
				CreateDWordField(Path("BUF"), 4, "DW"),
				CreateQWordField(Path("BUF"), 8, "QW"),
				Store(Int(0x12345678), Path("DW")),
				Store(One, Local(0)),
				Store(Or(ShiftLeft(Local(0), Int(32), nil), Path("DW"), nil), Path("QW")),
				Return(Path("BUF")),
			),
		},
		asl: `Method (CRS, 0, Serialized) {
				Name (BUF, Buffer () {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15})
				CreateDWordField (BUF, 4, DW)
				CreateQWordField (BUF, 8, QW)
				Store (0x12345678, DW)
				Store (One, Local0)
				Store (Or (ShiftLeft (Local0, 32), DW), QW)
				Return (BUF)
			}`,
		want: `1448054352535f08084255465f11130a10000102030405060708090a0b0c0d0e
			0f8a4255465f0a0444575f5f8f4255465f0a0851575f5f700c7856341244575f
			5f700160707d79600a200044575f5f0051575f5fa44255465f`,
	},
	{
		name: "ResourceTemplates",
		aml: []Aml{
			Name("RES", ResourceTemplate(
				Memory32Fixed{Base: 0xfed00000, Length: 0x1000},
				Memory32Fixed{ReadOnly: true, Base: 0xfee00000, Length: 0x100000},
				IO{Min: 0x3f8, Max: 0x3f8, Align: 1, Length: 8},
				IRQNoFlags{4},
				Interrupt{GSIs: []uint32{5}},
				Interrupt{Level: true, ActiveLow: true, Shared: true, GSIs: []uint32{20, 21}},
				QWordMemory{Caching: Cacheable, Min: 0x100000000, Max: 0x107ffffff, Length: 0x8000000},
				QWordMemory{Caching: WriteCombining, ReadOnly: true, Min: 0x1000, Max: 0x1fff, Length: 0x1000},
			)),
			Name("HID1", EISAID("PNP0C0C")),
			Name("HID2", EISAID("PNP0A06")),
		},
		asl: `Name (RES, ResourceTemplate () {
				Memory32Fixed (ReadWrite, 0xFED00000, 0x1000)
				Memory32Fixed (ReadOnly, 0xFEE00000, 0x100000)
				IO (Decode16, 0x3F8, 0x3F8, 1, 8)
				IRQNoFlags () {4}
				Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive) {5}
				Interrupt (ResourceConsumer, Level, ActiveLow, Shared) {20, 21}
				QWordMemory (ResourceConsumer, PosDecode, MinFixed, MaxFixed, Cacheable, ReadWrite,
					0, 0x100000000, 0x107FFFFFF, 0, 0x8000000)
				QWordMemory (ResourceConsumer, PosDecode, MinFixed, MaxFixed, WriteCombining, ReadOnly,
					0, 0x1000, 0x1FFF, 0, 0x1000)
			})
			Name (HID1, EisaId ("PNP0C0C"))
			Name (HID2, EisaId ("PNP0A06"))`,
		want: `085245535f114b090a97860900010000d0fe00100000860900000000e0fe0000
			10004701f803f8030108221000890600030105000000890a000d021400000015
			0000008a2b00000d0300000000000000000000000001000000ffffff07010000
			00000000000000000000000008000000008a2b00000d04000000000000000000
			10000000000000ff1f0000000000000000000000000000001000000000000079
			00
			08484944310c41d00c0c
			08484944320c41d00a06`,
	},
	{
		name: "HostBridgeResources",
		aml: []Aml{
			Name("CRS", ResourceTemplate(
				WordBusNumber{Min: 0, Max: 0},
				DWordMemory{Producer: true, Min: 0xc0000000, Max: 0xc0ffffff, Length: 0x1000000},
				QWordMemory{Producer: true, Min: 0x100000000, Max: 0x4ffffffff, Length: 0x400000000},
				DWordMemory{Caching: Prefetchable, ReadOnly: true, Min: 0x1000, Max: 0x1fff, Length: 0x1000},
			)),
		},
		asl: `Name (CRS, ResourceTemplate () {
				WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode, 0, 0, 0, 0, 1)
				DWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, NonCacheable, ReadWrite,
					0, 0xC0000000, 0xC0FFFFFF, 0, 0x1000000)
				QWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, NonCacheable, ReadWrite,
					0, 0x100000000, 0x4FFFFFFFF, 0, 0x400000000)
				DWordMemory (ResourceConsumer, PosDecode, MinFixed, MaxFixed, Prefetchable, ReadOnly,
					0, 0x1000, 0x1FFF, 0, 0x1000)
			})`,
		want: `084352535f1148070a74880d00020c0000000000000000000100871700000c01
			00000000000000c0ffffffc000000000000000018a2b00000c01000000000000
			00000000000001000000ffffffff040000000000000000000000000000000400
			0000871700000d060000000000100000ff1f000000000000001000007900`,
	},
	{
		name: "UUIDsAndComparisons",
		aml: []Aml{
			Method("CMP", 2, false,
				If(LEqual(Arg(0), UUID("33DB4D5B-1FF7-401C-9657-7441C03DD766")),
					If(LNotEqual(Arg(1), One), Return(One))),
				Return(Zero)),
		},
		asl: `Method (CMP, 2, NotSerialized) {
				If (LEqual (Arg0, ToUUID ("33DB4D5B-1FF7-401C-9657-7441C03DD766"))) {
					If (LNotEqual (Arg1, One)) { Return (One) }
				}
				Return (Zero)
			}`,
		want: `1428434d505f02a01f936811130a105b4ddb33f71f1c4096577441c03dd766a0
			0792936901a401a400`,
	},
	{
		name: "PackagesOfMoreThan255ElementsUseVarPackage",
		aml:  []Aml{Name("BIG", bigPackage(256))},
		asl:  "Name (BIG, Package () {" + strings.Repeat("One, ", 255) + "One})",
		// 259 bytes of contents + 2 length bytes = 0x105: lead 0x45, then 0x10.
		want: "08 4249475f 13 4510 0b0001" + strings.Repeat("01", 256),
	},
}

// bigPackage returns a package of n Ones.
func bigPackage(n int) Package {
	p := make(Package, n)
	for i := range p {
		p[i] = One
	}
	return p
}
