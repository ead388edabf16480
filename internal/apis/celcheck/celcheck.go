// Package celcheck compiles the CEL expressions that built-in kinds carry
// (DRA device selectors), so a write with an expression that cannot compile
// is refused with cel-go's own diagnostics, as upstream refuses it.
package celcheck

import (
	"fmt"
	"sync"

	"github.com/google/cel-go/cel"
)

var (
	deviceEnvOnce sync.Once
	deviceEnv     *cel.Env
	deviceEnvErr  error
)

// newDeviceEnv declares `device`, the variable a DRA selector reads. Its
// fields (driver, attributes, capacity, allowMultipleAllocations) are
// typed dynamically: the expression's syntax and its references are
// checked here, the values when the scheduler evaluates it.
func newDeviceEnv() (*cel.Env, error) {
	return cel.NewEnv(cel.Variable("device", cel.MapType(cel.StringType, cel.DynType)))
}

// DeviceSelector compiles a device selector expression and returns why it
// is unusable, or "" when it compiles to a boolean (or dynamic) result.
func DeviceSelector(expr string) string {
	deviceEnvOnce.Do(func() { deviceEnv, deviceEnvErr = newDeviceEnv() })
	if deviceEnvErr != nil {
		return fmt.Sprintf("compilation failed: %v", deviceEnvErr)
	}
	ast, iss := deviceEnv.Compile(expr)
	if iss.Err() != nil {
		return "compilation failed: " + iss.Err().Error()
	}
	if t := ast.OutputType(); !t.IsExactType(cel.BoolType) && !t.IsExactType(cel.DynType) {
		return fmt.Sprintf("must evaluate to bool, not %s", t)
	}
	return ""
}
