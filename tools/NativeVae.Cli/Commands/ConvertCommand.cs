using System.CommandLine;

namespace NativeVae.Cli.Commands;

/// <summary>
/// <c>nativevae convert &lt;input&gt; &lt;output.safetensors&gt; [--dtype fp32|fp16|bf16] [--family F]</c>:
/// any published layout (file, diffusers folder, TAESD encoder/decoder folder) to the converted format
/// (weights/README.md). The dtype defaults to the input's storage dtype (fp32 when mixed).
/// </summary>
internal sealed class ConvertCommand : ICommand
{
    public Command Build(TextWriter stdout, TextWriter stderr)
    {
        var input = new Argument<string>("input") { Description = "a VAE checkpoint file or folder (any layout `--model` takes)" };
        var output = new Argument<string>("output.safetensors") { Description = "the converted file to write (replaced if it exists)" };
        var dtype = OptionParsers.Choice<DType>("--dtype", "storage dtype of the output [default: the input's, fp32 when mixed]",
            ("fp32", DType.F32), ("fp16", DType.F16), ("bf16", DType.BF16));
        var family = ModelOptions.FamilyOption();
        var command = new Command("convert", "convert a VAE checkpoint (file or folder) to NativeVae's safetensors format")
        {
            input, output, dtype, family,
        };
        command.SetAction(parse =>
        {
            string outputPath = parse.GetValue(output)!;
            if (Directory.Exists(outputPath)) throw new UsageException($"output '{outputPath}' is a folder; give a file name");
            using var checkpoint = VaeCheckpoint.Open(parse.GetValue(input)!, parse.GetValue(family));
            var written = checkpoint.Convert(outputPath, parse.GetValue(dtype));
            string dtypeName = written switch { DType.F16 => "fp16", DType.BF16 => "bf16", _ => "fp32" };
            stdout.WriteLine($"{outputPath}: {OptionParsers.FamilyName(checkpoint.Family)}, {checkpoint.TensorCount} tensors, " +
                $"{checkpoint.ParameterCount} parameters, {dtypeName}");
            return ExitCodes.Success;
        });
        return command;
    }
}
