using CsCheck;
using Pipelines.Core.Definitions;

namespace Pipelines.Core.Tests.Definitions;

public sealed class SecretTextTests
{
    /// <summary>Literal text made of the characters that could be mistaken for a reference.</summary>
    private static readonly Gen<TextPart> Literals =
        Gen.OneOf("$", "$$", "{", "}", "secret:", "{secret:X}", "X", " ", "a").Array[0, 8].Select(pieces => TextPart.Literal(string.Concat(pieces)));

    private static readonly Gen<TextPart> Secrets = Gen.OneOf("X", "API_TOKEN").Select(TextPart.Secret);

    private static readonly Gen<TextPart[]> Values = Gen.Frequency((3, Literals), (1, Secrets)).Array[0, 6];

    [Fact]
    public void every_value_resolves_to_its_literal_text_and_its_secrets_and_nothing_else() => Values.Sample(parts =>
    {
        var expected = string.Concat(parts.Select(p => p.IsSecret ? $"<{p.Text}>" : p.Text));

        var encoded = SecretText.Encode(parts);

        Assert.Equal(expected, SecretText.Resolve(encoded, name => $"<{name}>"));
        Assert.Equal(parts.Where(p => p.IsSecret).Select(p => p.Text), SecretText.Names(encoded));
    });

    [Theory]
    [InlineData("${secret:X}", "<X>")]
    [InlineData("$${secret:X}", "${secret:X}")]
    [InlineData("$$${secret:X}", "$<X>")]
    [InlineData("$$$${secret:X}", "$${secret:X}")]
    [InlineData("costs $5, token ${secret:X}", "costs $5, token <X>")]
    [InlineData("{secret:X} and $HOME", "{secret:X} and $HOME")]
    public void a_run_of_dollars_before_a_reference_counts_two_for_each_literal_dollar(string text, string resolved) =>
        Assert.Equal(resolved, SecretText.Resolve(text, name => $"<{name}>"));
}
