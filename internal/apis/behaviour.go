package apis

// attachBehaviour wires the kind-specific functions into r.
func attachBehaviour(r *Resource) {
	r.Default = Default
	r.Validate = Validate
	r.ValidateUpdate = ValidateUpdate
	r.TableColumns, r.TableRow = tableFor(r.Kind)
	r.FieldSet = fieldSetFor(r)
}
