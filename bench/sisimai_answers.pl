#!/usr/bin/perl
# Sisimai's answers for bench/bounce_agreement.py, as JSON on standard output:
#   perl -I /path/to/p5-sisimai/lib bench/sisimai_answers.pl DIR/*.eml > answers.json
# One entry per message file, one answer per recipient (an empty list when Sisimai reads none).
use strict;
use warnings;
use Sisimai;
use JSON::PP;

my $answers = {};
for my $path (@ARGV) {
    my $facts = Sisimai->rise($path, 'delivered' => 1, 'vacation' => 1) || [];
    $answers->{$path} = [
        map {
            {
                'recipient' => $_->recipient->address,
                'reason'    => $_->reason,
                'hard'      => $_->hardbounce ? 1 : 0,
                'status'    => $_->deliverystatus,
                'command'   => $_->smtpcommand,
                'agent'     => $_->smtpagent,
                'diagnosis' => $_->diagnosticcode,
            }
        } @$facts
    ];
}
# Sisimai keeps the bytes it read: encoded as UTF-8 the output is always valid JSON.
print JSON::PP->new->utf8->canonical->pretty->encode($answers);
