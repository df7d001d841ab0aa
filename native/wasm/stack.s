# Each worker instance of the wasm module has its own __stack_pointer global, which starts at the main stack's top;
# the host gives every worker a stack of its own (allocated on the shared heap) through this function before it
# runs any C code. The stack pointer is a linker-made global, which C cannot name, hence assembly.
	.globaltype __stack_pointer, i32
	.text
	.globl kiln_set_stack_pointer
	.type kiln_set_stack_pointer,@function
	.export_name kiln_set_stack_pointer, kiln_set_stack_pointer
kiln_set_stack_pointer:
	.functype kiln_set_stack_pointer (i32) -> ()
	local.get 0
	global.set __stack_pointer
	end_function
