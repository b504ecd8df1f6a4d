using System.CommandLine;
using System.Text.Json.Nodes;

namespace NativeVae.Cli.Commands;

/// <summary>
/// <c>nativevae info &lt;file-or-folder&gt; [--family F]</c>: prints the model's config as one JSON object with
/// diffusers' key names, plus <c>family</c>, <c>dtype</c> (storage), <c>parameters</c> (the count), <c>downsample_factor</c> and
/// <c>latent_forms</c> (raw, and FLUX.2's patchified and packed).
/// </summary>
internal sealed class InfoCommand : ICommand
{
    public Command Build(TextWriter stdout, TextWriter stderr)
    {
        var path = new Argument<string>("file-or-folder") { Description = "a VAE checkpoint file or folder (any layout `--model` takes)" };
        var family = ModelOptions.FamilyOption();
        var command = new Command("info", "print a VAE checkpoint's config, family, dtype and parameter count as JSON") { path, family };
        command.SetAction(parse =>
        {
            using var checkpoint = VaeCheckpoint.Open(parse.GetValue(path)!, parse.GetValue(family));
            var json = checkpoint.ConfigJson();
            json["family"] = OptionParsers.FamilyName(checkpoint.Family);
            json["dtype"] = checkpoint.StorageDTypeName;
            json["parameters"] = checkpoint.ParameterCount;
            json["downsample_factor"] = checkpoint.DownsampleFactor;
            json["latent_forms"] = new JsonArray(checkpoint.SupportedLatentForms.Select(f => (JsonNode?)f.Name()).ToArray());
            stdout.WriteLine(json.ToJsonString());
            return ExitCodes.Success;
        });
        return command;
    }
}
