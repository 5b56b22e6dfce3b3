package acpi

// Store copies src into dst (a name, Local or Arg): ASL Store(src, dst).
func Store(src, dst Aml) Aml { return opN{op: storeOp, args: []Aml{src, dst}} }

// Add computes a + b, storing the sum in target unless target is nil:
// ASL Add(a, b, target). As an expression it yields the sum.
func Add(a, b, target Aml) Aml { return binOp(addOp, a, b, target) }

// Subtract computes a - b: ASL Subtract(a, b, target); see [Add].
func Subtract(a, b, target Aml) Aml { return binOp(subtractOp, a, b, target) }

// ShiftLeft computes a << n: ASL ShiftLeft(a, n, target); see [Add].
func ShiftLeft(a, n, target Aml) Aml { return binOp(shiftLeftOp, a, n, target) }

// ShiftRight computes a >> n: ASL ShiftRight(a, n, target); see [Add].
func ShiftRight(a, n, target Aml) Aml { return binOp(shiftRightOp, a, n, target) }

// And computes the bitwise a & b: ASL And(a, b, target); see [Add].
func And(a, b, target Aml) Aml { return binOp(andOp, a, b, target) }

// Or computes the bitwise a | b: ASL Or(a, b, target); see [Add].
func Or(a, b, target Aml) Aml { return binOp(orOp, a, b, target) }

// Increment adds one to the variable v: ASL Increment(v).
func Increment(v Aml) Aml { return opN{op: incrementOp, args: []Aml{v}} }

// Decrement subtracts one from the variable v: ASL Decrement(v).
func Decrement(v Aml) Aml { return opN{op: decrementOp, args: []Aml{v}} }

// SizeOf yields the length of a buffer, string or package: ASL SizeOf(obj).
func SizeOf(obj Aml) Aml { return opN{op: sizeOfOp, args: []Aml{obj}} }

// LEqual is true when a == b: ASL LEqual(a, b).
func LEqual(a, b Aml) Aml { return opN{op: lEqualOp, args: []Aml{a, b}} }

// LLess is true when a < b: ASL LLess(a, b).
func LLess(a, b Aml) Aml { return opN{op: lLessOp, args: []Aml{a, b}} }

// LGreater is true when a > b: ASL LGreater(a, b).
func LGreater(a, b Aml) Aml { return opN{op: lGreaterOp, args: []Aml{a, b}} }

// LAnd is true when both a and b are: ASL LAnd(a, b).
func LAnd(a, b Aml) Aml { return opN{op: lAndOp, args: []Aml{a, b}} }

// LOr is true when a or b is: ASL LOr(a, b).
func LOr(a, b Aml) Aml { return opN{op: lOrOp, args: []Aml{a, b}} }

// LNotEqual is true when a != b: ASL LNotEqual(a, b), which is
// LNot(LEqual(a, b)) in AML.
func LNotEqual(a, b Aml) Aml { return LNot(LEqual(a, b)) }

// LNot is true when a is zero: ASL LNot(a).
func LNot(a Aml) Aml { return opN{op: lNotOp, args: []Aml{a}} }

// Notify sends the notification value to the device obj:
// ASL Notify(obj, value).
func Notify(obj, value Aml) Aml { return opN{op: notifyOp, args: []Aml{obj, value}} }

// Return returns v from the method: ASL Return(v).
func Return(v Aml) Aml { return opN{op: returnOp, args: []Aml{v}} }

// Sleep suspends the method for ms milliseconds: ASL Sleep(ms).
func Sleep(ms Aml) Aml { return opN{op: extOpPrefix, op2: sleepOp, args: []Aml{ms}} }

// binOp builds a two-operand opcode with an optional target.
func binOp(op byte, a, b, target Aml) Aml {
	if target == nil {
		target = nullName{}
	}
	return opN{op: op, args: []Aml{a, b, target}}
}

// nullName is the empty target of an operator whose result is not stored.
type nullName struct{}

func (nullName) AppendAml(b []byte) []byte { return append(b, 0x00) }

// opN is an opcode (op2 follows when op is the extended prefix) followed by
// its operands.
type opN struct {
	op, op2 byte
	args    []Aml
}

func (o opN) AppendAml(b []byte) []byte {
	b = append(b, o.op)
	if o.op == extOpPrefix {
		b = append(b, o.op2)
	}
	return appendTerms(b, o.args)
}

// Call invokes the method at path with args; it is a statement or an
// expression yielding the method's return value: ASL path(args...). The
// method must be declared somewhere in the table set with exactly
// len(args) arguments, since AML does not record the count at the call.
func Call(path string, args ...Aml) Aml { return call{path: path, args: args} }

type call struct {
	path string
	args []Aml
}

func (c call) AppendAml(b []byte) []byte {
	if len(c.args) > 7 {
		fail("call of %q with %d arguments (0-7 allowed)", c.path, len(c.args))
	}
	return appendTerms(appendNameString(b, c.path), c.args)
}

// If runs body when pred is true: ASL If(pred) { body }. An [Else]
// directly following it in the same term list runs otherwise.
func If(pred Aml, body ...Aml) Aml {
	return predicated{op: ifOp, pred: pred, body: body}
}

// While runs body as long as pred is true: ASL While(pred) { body }.
func While(pred Aml, body ...Aml) Aml {
	return predicated{op: whileOp, pred: pred, body: body}
}

type predicated struct {
	op   byte
	pred Aml
	body []Aml
}

func (p predicated) AppendAml(b []byte) []byte {
	return appendPackage(b, []byte{p.op}, func(c []byte) []byte {
		return appendTerms(appendTerm(c, p.pred), p.body)
	})
}

// Else runs body when the [If] just before it did not: ASL Else { body }.
// It must directly follow an If in the same term list.
func Else(body ...Aml) Aml { return elseBlock(body) }

type elseBlock []Aml

func (e elseBlock) AppendAml(b []byte) []byte {
	return appendPackage(b, []byte{elseOp}, func(c []byte) []byte {
		return appendTerms(c, e)
	})
}
